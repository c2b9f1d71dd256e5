"""Omniglot (Lake et al. 2015) from the original zips, extracted folders or tensorflow-datasets.

A character is a class (20 drawings each). Class names are `"<Alphabet>/<characterNN>"`, so
the data can be split by alphabet. The same character appearing in two splits (the
`small1`/`small2` background sets share Greek and Latin) is loaded once.

Example:

>>> data = load_omniglot(("small1", "small2"))            # 242 characters, 4,840 images
>>> train, test = data.split_by_alphabet(DEFAULT_HELD_OUT_ALPHABETS)
>>> train = train.with_rotations()                       # x4 classes
>>> papers_test = test.test_classes("rotations")         # the papers' test classes (x4)

`tfmeta.data.omniglot_splits.load_omniglot_split` does these steps in one call, as the recipes
and benchmarks do.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from tfmeta.data.images import decode_stroke_image

#: Alphabets held out for testing in tfmeta's recipes and reported numbers (64 characters).
DEFAULT_HELD_OUT_ALPHABETS = ("Balinese", "Korean")

#: How held-out characters become test classes (`OmniglotData.test_classes`):
#: `"characters"`, one class per held-out character as drawn (tfmeta's stricter protocol: with
#: only two held-out alphabets, most episodes compare characters of one alphabet); and
#: `"rotations"`, each held-out character and its 90/180/270-degree rotations as four classes,
#: the protocol of the published Omniglot figures (Vinyals et al. 2016's split, used by
#: Snell et al. 2017's prototypical networks and Finn et al. 2017's MAML; learn2learn's
#: Omniglot tasksets rotate test classes too).
TEST_PROTOCOLS = ("characters", "rotations")


def parse_test_protocols(protocols: str | Sequence[str]) -> list[str]:
    """Returns the protocols of a comma list (`"characters,rotations"`) or sequence.

    Raises:
        ValueError: If it names none, or one not in `TEST_PROTOCOLS`.
    """
    names = protocols.split(",") if isinstance(protocols, str) else list(protocols)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in TEST_PROTOCOLS]
    if unknown or not names:
        raise ValueError(
            f"`test_protocols` must name some of {list(TEST_PROTOCOLS)}; received "
            f"{protocols!r}."
        )
    return names


#: File stem of each split in the original release and in tensorflow-datasets.
SPLIT_FILES = {
    "small1": "images_background_small1",
    "small2": "images_background_small2",
    "train": "images_background",
    "background": "images_background",
    "test": "images_evaluation",
    "evaluation": "images_evaluation",
}


def default_data_dir() -> Path:
    """`$TFMETA_DATA_DIR`, else `../shared/data` relative to the working directory."""
    return Path(os.environ.get("TFMETA_DATA_DIR", Path("..") / "shared" / "data"))


@dataclass
class OmniglotData:
    """Images of characters with labels 0..C-1.

    Attributes:
        x: float32 `[N, H, W, 1]`, ink = 1.0.
        y: int64 `[N]`, class ids 0..C-1.
        class_names: `C` names `"<Alphabet>/<characterNN>"` (rotated classes get `"/rot90"`...).
        alphabets: `C` alphabet names, one per class.
        drawers: int `[N]` drawer id of each image (1..20), or -1 when unknown.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    alphabets: list[str]
    drawers: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.drawers is None:
            self.drawers = np.full(len(self.y), -1, dtype=np.int32)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.y)

    def select_classes(self, keep: Sequence[int]) -> "OmniglotData":
        """Returns the subset holding classes `keep`, relabelled 0..len(keep)-1 in that order."""
        keep = list(keep)
        remap = np.full(self.num_classes, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        mask = remap[self.y] >= 0
        return OmniglotData(
            self.x[mask],
            remap[self.y[mask]],
            [self.class_names[i] for i in keep],
            [self.alphabets[i] for i in keep],
            self.drawers[mask],
        )

    def split_by_alphabet(
        self, held_out: Iterable[str] = DEFAULT_HELD_OUT_ALPHABETS
    ) -> tuple["OmniglotData", "OmniglotData"]:
        """Splits into `(train, test)` where `test` holds every character of `held_out`.

        Raises:
            ValueError: If an alphabet in `held_out` is not in the data.
        """
        held_out = list(held_out)
        known = sorted(set(self.alphabets))
        unknown = [a for a in held_out if a not in known]
        if unknown:
            raise ValueError(
                f"`held_out` names alphabets not in the data: {unknown}; available: {known}."
            )
        test = [i for i, a in enumerate(self.alphabets) if a in held_out]
        train = [i for i, a in enumerate(self.alphabets) if a not in held_out]
        return self.select_classes(train), self.select_classes(test)

    def with_rotations(self, angles: Sequence[int] = (90, 180, 270)) -> "OmniglotData":
        """Adds each rotation of every character as a new class (Santoro et al. 2016)."""
        for angle in angles:
            if angle % 90:
                raise ValueError(f"`angles` must be multiples of 90; received {angle}.")
        return self._with_transformed_classes(
            [(np.rot90(self.x, k=angle // 90, axes=(1, 2)), f"rot{angle}") for angle in angles]
        )

    def test_classes(self, protocol: str = "characters") -> "OmniglotData":
        """Returns these (held-out) characters as the test classes of `protocol`.

        Args:
            protocol: One of `TEST_PROTOCOLS`. `"characters"` returns the data unchanged;
                `"rotations"` adds every rotation by 90, 180 and 270 degrees as a new class
                (x4 classes), as the split behind the published figures does (Vinyals et al.
                2016; Snell et al. 2017; Finn et al. 2017). The characters stay unseen in
                training either way; with rotations an episode's classes are drawn from four
                times as many, so fewer of them are near-identical characters of one alphabet.

        Raises:
            ValueError: If `protocol` is not one of `TEST_PROTOCOLS`.

        Example:

        >>> train, test = load_omniglot().split_by_alphabet()
        >>> for protocol in TEST_PROTOCOLS:
        ...     t = test.test_classes(protocol)
        ...     learner.evaluate_episodes(t.x, t.y, ways=5, shots=1)
        """
        if protocol not in TEST_PROTOCOLS:
            raise ValueError(
                f"`protocol` must be one of {list(TEST_PROTOCOLS)}; received {protocol!r}."
            )
        return self if protocol == "characters" else self.with_rotations()

    def with_mirrors(self) -> "OmniglotData":
        """Adds the mirror image (left-right flip) of every class as a new class.

        Mirrored characters are plausible new characters, as rotations are; after
        `with_rotations()` this completes the 8 symmetries of the square (x8 classes).

        Example:

        >>> train = train.with_rotations().with_mirrors()   # x8 classes
        """
        return self._with_transformed_classes([(np.flip(self.x, axis=2), "mirror")])

    def with_composites(self, count: int, seed: int = 0) -> "OmniglotData":
        """Adds `count` new classes, each the overlay of two characters of one alphabet.

        Class `a+b`'s drawing by drawer `d` is the ink union (pixel-wise maximum) of `a` and `b`
        as drawer `d` drew them, so every new class is one consistent "character" across its
        drawers. A form of task augmentation for meta-training on few base classes (in the
        spirit of Yao et al. 2021, "Meta-learning with fewer tasks through task
        interpolation"); apply it before `with_rotations()` so the new classes rotate too.

        Example:

        >>> train = train.with_composites(train.num_classes).with_rotations()

        Args:
            count: Number of new classes; distinct pairs are drawn without replacement.
            seed: Seed of the pair draw.

        Raises:
            ValueError: If `count` is negative or exceeds the number of same-alphabet pairs
                of classes whose drawer ids are known.
        """
        if (self.drawers < 0).any():
            raise ValueError("`with_composites` needs every image's drawer id; some are -1.")
        pairs = [
            (a, b)
            for a in range(self.num_classes)
            for b in range(a + 1, self.num_classes)
            if self.alphabets[a] == self.alphabets[b]
        ]
        if not 0 <= count <= len(pairs):
            raise ValueError(
                f"`count` must be in [0, {len(pairs)}] (same-alphabet pairs of the "
                f"{self.num_classes} classes); received {count}."
            )
        rng = np.random.default_rng(seed)
        chosen = [pairs[i] for i in sorted(rng.choice(len(pairs), size=count, replace=False))]
        index = [{} for _ in range(self.num_classes)]  # class -> {drawer: image index}
        for i, (c, d) in enumerate(zip(self.y, self.drawers)):
            index[int(c)][int(d)] = i
        xs, ys, drawers, names, alphabets = [self.x], [self.y], [self.drawers], [], []
        for k, (a, b) in enumerate(chosen):
            shared = sorted(index[a].keys() & index[b].keys())
            ia = [index[a][d] for d in shared]
            ib = [index[b][d] for d in shared]
            xs.append(np.maximum(self.x[ia], self.x[ib]))
            ys.append(np.full(len(shared), self.num_classes + k, dtype=self.y.dtype))
            drawers.append(np.asarray(shared, dtype=self.drawers.dtype))
            names.append(f"{self.class_names[a]}+{self.class_names[b].split('/')[-1]}")
            alphabets.append(self.alphabets[a])
        return OmniglotData(
            np.concatenate(xs), np.concatenate(ys), list(self.class_names) + names,
            list(self.alphabets) + alphabets, np.concatenate(drawers),
        )

    def _with_transformed_classes(self, copies: Sequence[tuple[np.ndarray, str]]) -> "OmniglotData":
        """Appends each `(transformed x, suffix)` copy as new classes named `<name>/<suffix>`."""
        xs, ys, names = [self.x], [self.y], list(self.class_names)
        for i, (x, suffix) in enumerate(copies, start=1):
            xs.append(np.ascontiguousarray(x))
            ys.append(self.y + i * self.num_classes)
            names += [f"{n}/{suffix}" for n in self.class_names]
        n = len(copies) + 1
        return OmniglotData(
            np.concatenate(xs), np.concatenate(ys), names, list(self.alphabets) * n,
            np.concatenate([self.drawers] * n),
        )

def _iter_zip(path: Path) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            if name.lower().endswith(".png"):
                yield name, zf.read(name)


def _iter_folder(path: Path) -> Iterator[tuple[str, bytes]]:
    for file in sorted(path.rglob("*.png")):
        yield str(file.relative_to(path.parent)), file.read_bytes()


def iter_split_files(split: str, data_dir: str | os.PathLike | None = None) -> Iterator[tuple[str, bytes]]:
    """Yields `(relative path, PNG bytes)` of one split from its zip or extracted folder.

    Raises:
        FileNotFoundError: If neither `<stem>.zip` nor `<stem>/` exists under the data dir.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"`splits` entries must be one of {sorted(SPLIT_FILES)}; received {split!r}.")
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    stem = SPLIT_FILES[split]
    for base in (root / "omniglot", root):
        if (base / f"{stem}.zip").is_file():
            return _iter_zip(base / f"{stem}.zip")
        if (base / stem).is_dir():
            return _iter_folder(base / stem)
    raise FileNotFoundError(
        f"Omniglot split {split!r} not found: looked for {stem}.zip or {stem}/ in "
        f"{root / 'omniglot'} and {root}. Set `data_dir` or TFMETA_DATA_DIR, or use "
        "source='tfds'."
    )


def _parse_path(path: str) -> tuple[str, str, int] | None:
    """`.../<Alphabet>/<characterNN>/<id>_<drawer>.png` -> (alphabet, character, drawer)."""
    parts = path.replace("\\", "/").split("/")
    if len(parts) < 3:
        return None
    alphabet, character, filename = parts[-3], parts[-2], parts[-1]
    try:
        drawer = int(filename.rsplit(".", 1)[0].rsplit("_", 1)[1])
    except (IndexError, ValueError):
        drawer = -1
    return alphabet, character, drawer


def collect_records(splits: Sequence[str], data_dir=None) -> dict[str, list[tuple[int, str, bytes]]]:
    """Returns `{"Alphabet/characterNN": [(drawer, filename, png bytes), ...]}`, deduplicated."""
    records: dict[str, dict[str, tuple[int, str, bytes]]] = {}
    for split in splits:
        for path, data in iter_split_files(split, data_dir):
            parsed = _parse_path(path)
            if parsed is None:
                continue
            alphabet, character, drawer = parsed
            filename = path.rsplit("/", 1)[-1]
            records.setdefault(f"{alphabet}/{character}", {})[filename] = (drawer, filename, data)
    return {k: sorted(v.values()) for k, v in sorted(records.items())}


def load_omniglot(
    splits: Sequence[str] | str = ("small1", "small2"),
    image_size: int = 28,
    data_dir: str | os.PathLike | None = None,
    source: str = "auto",
    alphabets: Iterable[str] | None = None,
) -> OmniglotData:
    """Loads Omniglot characters as float32 images.

    Args:
        splits: Split names: `"small1"`, `"small2"`, `"train"` (background), `"test"`
            (evaluation).
        image_size: Output side length (28 as in the few-shot literature; 105 is the original).
        data_dir: Folder holding `omniglot/<stem>.zip` (or the extracted folders); defaults to
            `$TFMETA_DATA_DIR`, then `../shared/data`.
        source: `"files"` (zips or folders), `"tfds"` (tensorflow-datasets), or `"auto"`
            (files when present, else tfds).
        alphabets: Keep only these alphabets.

    Returns:
        An `OmniglotData`.
    """
    if isinstance(splits, str):
        splits = (splits,)
    if source not in ("auto", "files", "tfds"):
        raise ValueError(f"`source` must be 'auto', 'files' or 'tfds'; received {source!r}.")
    if source == "tfds":
        return load_omniglot_tfds(splits, image_size, data_dir=None, alphabets=alphabets)
    try:
        records = collect_records(splits, data_dir)
    except FileNotFoundError:
        if source == "files":
            raise
        return load_omniglot_tfds(splits, image_size, alphabets=alphabets)
    keep = set(alphabets) if alphabets is not None else None
    xs, ys, drawers, names, alpha = [], [], [], [], []
    for name, items in records.items():
        alphabet = name.split("/")[0]
        if keep is not None and alphabet not in keep:
            continue
        label = len(names)
        names.append(name)
        alpha.append(alphabet)
        for drawer, _, data in items:
            xs.append(decode_stroke_image(data, image_size))
            ys.append(label)
            drawers.append(drawer)
    if not xs:
        raise ValueError(f"No images found for splits {list(splits)} and alphabets {alphabets}.")
    return OmniglotData(
        np.stack(xs), np.array(ys, dtype=np.int64), names, alpha, np.array(drawers, dtype=np.int32)
    )


def from_tfds_examples(examples, alphabet_names: Sequence[str], image_size: int = 28) -> OmniglotData:
    """Builds `OmniglotData` from tensorflow-datasets `omniglot` examples (numpy dicts).

    Each example has `image` (uint8 [105, 105, 3]), `alphabet` (int), `alphabet_char_id` (int)
    and `label` (int character id).
    """
    by_class: dict[tuple[int, int], list[np.ndarray]] = {}
    for ex in examples:
        key = (int(ex["alphabet"]), int(ex["alphabet_char_id"]))
        by_class.setdefault(key, []).append(decode_stroke_image(ex["image"], image_size))
    xs, ys, names, alpha = [], [], [], []
    for label, (key, images) in enumerate(sorted(by_class.items())):
        alphabet = alphabet_names[key[0]]
        names.append(f"{alphabet}/character{key[1] + 1:02d}")
        alpha.append(alphabet)
        xs.extend(images)
        ys.extend([label] * len(images))
    return OmniglotData(np.stack(xs), np.array(ys, dtype=np.int64), names, alpha)


#: tfmeta's split names that tensorflow-datasets spells differently.
TFDS_SPLITS = {"background": "train", "evaluation": "test"}


def load_omniglot_tfds(splits, image_size=28, data_dir=None, alphabets=None) -> OmniglotData:
    """Loads Omniglot through `tensorflow_datasets` (downloads on first use where online).

    A character that several requested splits hold (`small1` and `small2` share Greek and
    Latin) is loaded once, from the first split that has it, as from the files.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder("omniglot", data_dir=data_dir)
    builder.download_and_prepare()
    names = builder.info.features["alphabet"].names
    examples, loaded = [], set()
    for split in splits:
        split_classes = set()
        for example in tfds.as_numpy(builder.as_dataset(split=TFDS_SPLITS.get(split, split))):
            key = (int(example["alphabet"]), int(example["alphabet_char_id"]))
            if key in loaded:  # a character of an earlier split (small1 and small2 share two alphabets)
                continue
            split_classes.add(key)
            examples.append(example)
        loaded |= split_classes
    data = from_tfds_examples(examples, names, image_size)
    if alphabets is not None:
        keep = set(alphabets)
        data = data.select_classes([i for i, a in enumerate(data.alphabets) if a in keep])
    return data
