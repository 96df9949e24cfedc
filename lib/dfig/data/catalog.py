"""Known data collections: where each comes from, how its download is laid out, what it should hold.

``python -m dfig.data fetch NAME`` downloads a collection and ``python -m dfig.data check DIR --expect
NAME`` compares a tree with it. One collection today: ``faces140k``, the "140k Real and Fake Faces" set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dfig.registry import lookup


@dataclass(frozen=True)
class Collection:
    """What a collection is and should hold.

    ``counts``: files per canonical split and class; ``size``: (width, height) of every image;
    ``format``: PIL's format name; ``slug``: the Kaggle dataset; ``archive``: the file the download
    writes; ``tree``: where the split folders sit inside it; ``download_gb``/``unpacked_gb``: sizes.
    """

    name: str
    title: str
    slug: str
    archive: str
    tree: str
    counts: dict[str, dict[str, int]]
    size: tuple[int, int]
    format: str
    download_gb: float
    unpacked_gb: float
    extra_files: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        """The number of images in the collection."""
        return sum(n for per in self.counts.values() for n in per.values())


FACES140K = Collection(
    name="faces140k",
    title="140k Real and Fake Faces (70k FFHQ photographs + 70k StyleGAN faces, 256x256 JPEG)",
    slug="xhlulu/140k-real-and-fake-faces",
    archive="140k-real-and-fake-faces.zip",
    tree="real_vs_fake/real-vs-fake",
    counts={
        "train": {"real": 50_000, "fake": 50_000},
        "val": {"real": 10_000, "fake": 10_000},
        "test": {"real": 10_000, "fake": 10_000},
    },
    size=(256, 256),
    format="JPEG",
    download_gb=4.0,
    unpacked_gb=4.0,
    extra_files=("train.csv", "valid.csv", "test.csv"),
)

#: the collections ``fetch`` and ``check --expect`` know, by name
COLLECTIONS: dict[str, Collection] = {c.name: c for c in (FACES140K,)}


def collection(name: str) -> Collection:
    """The collection called ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    return lookup(COLLECTIONS, name, "data collection")


__all__ = ["COLLECTIONS", "Collection", "FACES140K", "collection"]
