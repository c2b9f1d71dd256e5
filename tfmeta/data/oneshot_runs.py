"""Lake et al.'s 20-way one-shot classification runs: writing and reading the format.

A runs folder (or zip) holds `runNN/training/classMM.png` (one drawing of each of 20
characters), `runNN/test/itemMM.png` (20 query drawings by another drawer) and
`runNN/class_labels.txt` with lines `runNN/test/itemMM.png runNN/training/classKK.png`.

Example:

>>> make_oneshot_runs("runs/heldout", alphabets=DEFAULT_HELD_OUT_ALPHABETS, n_runs=20)
>>> runs = load_oneshot_runs("runs/heldout")        # 20 Episodes, 20-way 1-shot

`tfmeta.fewshot.oneshot.evaluate_saved_model` scores a `few_shot` SavedModel on them, and
`tfmeta.fewshot.evaluation.score_episodes(model, EpisodeList(runs))` a model in process.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable

import numpy as np

from tfmeta.data.episodes import Episode
from tfmeta.data.images import decode_stroke_image
from tfmeta.data.omniglot import DEFAULT_HELD_OUT_ALPHABETS, collect_records


def make_oneshot_runs(
    out_dir: str | os.PathLike,
    alphabets: Iterable[str] = DEFAULT_HELD_OUT_ALPHABETS,
    n_runs: int = 20,
    ways: int = 20,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    splits: Iterable[str] = ("small1", "small2"),
    reuse: bool = False,
) -> str:
    """Builds one-shot runs in Lake's format from the original Omniglot PNGs.

    As in Lake et al. (2015), each run draws `ways` characters from a single alphabet (runs
    cycle through the alphabets that have enough characters), the training image of every
    character comes from one drawer and its test image from another.

    Args:
        out_dir: Folder to write (created), or a path ending in `.zip` to write a zip.
        alphabets: Alphabets to draw characters from (held out from training!).
        n_runs: Number of runs.
        ways: Characters per run.
        seed: Random seed.
        data_dir: Omniglot data folder (see `load_omniglot`).
        splits: Omniglot splits to read.
        reuse: When `out_dir` is a folder that already holds runs (`run01/class_labels.txt`),
            leave it as it is, so every script scores the same runs; the other arguments
            are then not checked against it.

    Returns:
        `out_dir` as a string.

    Raises:
        ValueError: If no alphabet has `ways` characters.
    """
    if reuse and (Path(out_dir) / "run01" / "class_labels.txt").is_file():
        return str(out_dir)
    alphabets = list(alphabets)
    records = collect_records(list(splits), data_dir)
    by_alphabet: dict[str, list[str]] = {}
    for name in records:
        alphabet = name.split("/")[0]
        if alphabet in alphabets:
            by_alphabet.setdefault(alphabet, []).append(name)
    eligible = sorted(a for a, chars in by_alphabet.items() if len(chars) >= ways)
    if not eligible:
        sizes = {a: len(c) for a, c in by_alphabet.items()}
        raise ValueError(
            f"`ways`={ways} needs an alphabet with at least {ways} characters; `alphabets` "
            f"have {sizes or 'none found'}."
        )
    rng = np.random.default_rng(seed)
    files: dict[str, bytes] = {}
    for run in range(1, n_runs + 1):
        alphabet = eligible[(run - 1) % len(eligible)]
        chars = rng.choice(by_alphabet[alphabet], size=ways, replace=False)
        drawers = set.intersection(*({d for d, _, _ in records[c]} for c in chars))
        train_drawer, test_drawer = rng.choice(sorted(drawers), size=2, replace=False)
        order = rng.permutation(ways)
        lines = []
        for k, char in enumerate(chars, start=1):
            by_drawer = {d: data for d, _, data in records[char]}
            files[f"run{run:02d}/training/class{k:02d}.png"] = by_drawer[train_drawer]
        for m, k in enumerate(order, start=1):
            by_drawer = {d: data for d, _, data in records[chars[k]]}
            files[f"run{run:02d}/test/item{m:02d}.png"] = by_drawer[test_drawer]
            lines.append(f"run{run:02d}/test/item{m:02d}.png run{run:02d}/training/class{k + 1:02d}.png")
        files[f"run{run:02d}/class_labels.txt"] = ("\n".join(lines) + "\n").encode()
    out = str(out_dir)
    if out.endswith(".zip"):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        for name, data in files.items():
            path = Path(out) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return out


class _Reader:
    """Reads files by relative path from a folder or a zip."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_file() and zipfile.is_zipfile(self.path):
            self.zip = zipfile.ZipFile(self.path)
            self.names = [n for n in self.zip.namelist() if not n.endswith("/")]
        elif self.path.is_dir():
            self.zip = None
            self.names = [str(p.relative_to(self.path)).replace(os.sep, "/") for p in self.path.rglob("*") if p.is_file()]
        else:
            raise FileNotFoundError(f"`runs` must be a folder or a zip of one-shot runs; {path} is neither.")

    def read(self, name: str) -> bytes:
        return self.zip.read(name) if self.zip else (self.path / name).read_bytes()


def _relative_to_run(path: str) -> str:
    """`.../runNN/test/item01.png` -> `test/item01.png`."""
    parts = PurePosixPath(path.strip()).parts
    for i, part in enumerate(parts):
        if part in ("test", "training"):
            return "/".join(parts[i:])
    raise ValueError(f"Unrecognised one-shot runs path {path!r}: expected .../test/... or .../training/...")


def load_oneshot_runs(path: str | os.PathLike, image_size: int | tuple[int, int] = 28) -> list[Episode]:
    """Reads one-shot runs (a folder or a zip) into episodes.

    Returns:
        One `Episode` per run, sorted by run name: `support_x [W, H, W, 1]` with labels 0..W-1
        in `classNN` order, and the run's test items with their true labels.
    """
    reader = _Reader(path)
    label_files = sorted(n for n in reader.names if n.endswith("class_labels.txt"))
    if not label_files:
        raise FileNotFoundError(f"No runNN/class_labels.txt found in {path}.")
    episodes = []
    for label_file in label_files:
        run_root = label_file[: -len("class_labels.txt")]
        pairs = []
        for line in reader.read(label_file).decode().splitlines():
            if line.strip():
                test, train = line.split()
                pairs.append((_relative_to_run(test), _relative_to_run(train)))
        classes = sorted({train for _, train in pairs} | {
            n[len(run_root):] for n in reader.names if n.startswith(run_root + "training/") and n.endswith(".png")
        })
        index = {c: i for i, c in enumerate(classes)}
        support_x = np.stack([decode_stroke_image(reader.read(run_root + c), image_size) for c in classes])
        query_x = np.stack([decode_stroke_image(reader.read(run_root + t), image_size) for t, _ in pairs])
        query_y = np.array([index[c] for _, c in pairs], dtype=np.int32)
        episodes.append(Episode(support_x, np.arange(len(classes), dtype=np.int32), query_x, query_y))
    return episodes
