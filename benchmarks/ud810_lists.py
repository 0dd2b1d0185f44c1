"""Clip and split lists for the second real dataset (Georgia Tech / Udacity ud810 problem set 7 clips).

    python benchmarks/ud810_lists.py FOLDER

FOLDER holds ``<class>/PS7A<action>P<person>T<trial>.avi``: 27 real clips (640x480, 29.97 fps, MPEG-4 Part 2 AVI)
of 3 persons doing 3 arm actions 3 times, from ``gkouros/intro-to-cv-ud810`` at commit
``efede1b680388bc229f2dab53e0e13f9ee15c4cd`` (``ps7_python/input/``; the repository has no licence, so the clips are
for local evaluation only and never enter this repository). Writes ``ud810-clips.csv`` (path, class, person) and
``ud810-split.csv`` (person-disjoint: train P1, val P2, test P3) beside FOLDER, the layout
``benchmarks/real_footage.py --dataset ud810=FOLDER:…/ud810-split.csv`` reads; with 3 persons its
leave-one-person-out table is the figure to read, the one-person splits are noisy.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

NAME = re.compile(r"PS7A(?P<action>\d)P(?P<person>\d)T(?P<trial>\d)$")
SPLIT = {"P1": "train", "P2": "val", "P3": "test"}


def main(folder: Path) -> None:
    rows = []
    for path in sorted(folder.glob("*/*.avi")):
        match = NAME.match(path.stem)
        if match is None:
            raise SystemExit(f"{path}: not a PS7A<action>P<person>T<trial>.avi file")
        rows.append({"path": path.relative_to(folder).as_posix(), "class": path.parent.name,
                     "person": f"P{match['person']}"})
    if not rows:
        raise SystemExit(f"{folder}: no <class>/*.avi clips")
    with open(folder.parent / "ud810-clips.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "class", "person"])
        writer.writeheader()
        writer.writerows(rows)
    with open(folder.parent / "ud810-split.csv", "w", newline="") as handle:
        split_writer = csv.writer(handle)
        split_writer.writerow(["path", "split"])
        split_writer.writerows([row["path"], SPLIT[row["person"]]] for row in rows)
    print(f"{len(rows)} clips, {len({r['person'] for r in rows})} persons -> {folder.parent}/ud810-{{clips,split}}.csv")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
