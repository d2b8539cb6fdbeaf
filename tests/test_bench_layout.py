"""bench/results/README.md points at the current figure of every benchmark, and at nothing missing."""

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def test_results_table_points_at_every_current_file():
    readme = (RESULTS / "README.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", readme.split("# History", 1)[0])
    assert links and all((RESULTS / link).is_file() for link in links), [x for x in links if not (RESULTS / x).is_file()]
    stems = {Path(link).with_suffix("").as_posix() for link in links}
    files = [p for p in RESULTS.glob("*/*") if p.suffix in (".md", ".json", ".png") and p.name != "notes.md"]
    names = [p.relative_to(RESULTS) for p in files]
    unlisted = [n.as_posix() for n in names if n.with_suffix("").as_posix() not in stems]
    assert not unlisted, f"results files missing from the README table: {unlisted}"
    assert not [p for p in RESULTS.iterdir() if p.is_file() and p.name != "README.md"], "results belong in a target folder"
