"""Heron runner ``rpc``: measuring on remote devices through TVM's RPC tracker."""
