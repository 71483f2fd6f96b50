"""Training data for ZSE-GAN: the ZSE-GAN dataset layout, read directly, and ROI extraction.

Layout (the authors' repository and what `zse extract-rois` writes):
    trainB/*.npz    key `arr_0`, uint8 (or uint16) (Y, X, Z), z LAST: blurred z-scan ROIs x
    trainA2D/*.tif  (Y, X): in-focus 2D patches y*
    trainA29/*.tif  (L, Z): in-focus vertical "sections" (lateral × z crops of in-focus images)
    split.json      optional {"train": [...], "val": [...]} of trainB file names
At the loading boundary stacks become z-first (Z, Y, X) (`np.moveaxis(a, -1, 0)`). Intensities map to
[-1, 1] with v/127.5 − 1 (uint8; = (v/255 − 0.5)/0.5 of the notebook) or v/32767.5 − 1 (uint16).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zse.errors import InputError
from zse.models.npz import load_npz_stack

HALF_RANGE = {"uint8": 127.5, "uint16": 32767.5}


def match_brightness(images: np.ndarray, reference: np.ndarray, dtype: str = "uint8") -> np.ndarray:
    """`images` mapped linearly so that their mean and standard deviation (over all pixels) equal the
    `reference`'s, rounded and clipped to `dtype` (uint8 or uint16); same shape as `images`."""
    f = np.asarray(images, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    out = (f - f.mean()) * (r.std() / max(float(f.std()), 1e-6)) + r.mean()
    top = 255 if dtype == "uint8" else 65535
    return np.clip(np.rint(out), 0, top).astype(np.uint8 if dtype == "uint8" else np.int32)


def to_unit(a: torch.Tensor, dtype: str) -> torch.Tensor:
    """uint8/uint16 values (any shape) → float32 in [-1, 1]."""
    if dtype not in HALF_RANGE:
        raise InputError(f"dtype {dtype} is not supported; valid: uint8, uint16")
    return a.to(torch.float32) / HALF_RANGE[dtype] - 1.0


def _hash_fraction(name: str, seed: int) -> float:
    h = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_names(names: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic train/val split by a hash of (seed, file name): independent of file order.

    At least one validation name when val_fraction > 0 and there are ≥ 2 names.
    """
    names = sorted(names)
    if val_fraction <= 0 or len(names) < 2:
        return names, []
    scored = sorted(names, key=lambda n: _hash_fraction(n, seed))
    val = [n for n in names if _hash_fraction(n, seed) < val_fraction]
    if not val:
        val = [scored[0]]
    train = [n for n in names if n not in set(val)]
    return train, val


def _read_tif(path: Path) -> np.ndarray:
    import tifffile

    a = tifffile.imread(path)
    if a.ndim == 3 and a.shape[-1] in (3, 4):  # RGB(A) → BT.601 gray
        a = (a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114).round().astype(a.dtype)
    if a.ndim != 2:
        raise InputError(f"{path}: expected a 2D image, got shape {a.shape}")
    return a


@dataclass
class RoiDataset:
    """All ROIs of a dataset folder in memory (uint tensors; ~95 MB for the 200 Huron ROIs).

    Attributes:
        blurred: (M, Z, Y, X) training stacks; val: (V, Z, Y, X) validation stacks;
        sharp2d: (K, Y, X); sharp29: (L, lateral, Z); dtype: "uint8" or "uint16";
        train_names, val_names: trainB file names.
    """

    blurred: torch.Tensor
    val: torch.Tensor
    sharp2d: torch.Tensor
    sharp29: torch.Tensor
    dtype: str
    train_names: list[str]
    val_names: list[str]

    @classmethod
    def load(cls, path: str | Path, *, z_planes: int = 29, val_fraction: float = 0.05, split_seed: int = 0) -> RoiDataset:
        """Read a dataset folder (see module docstring). Raises InputError naming what is wrong."""
        root = Path(path)
        if not root.is_dir():
            raise InputError(f"dataset folder {root} not found (expected trainB/, trainA2D/, trainA29/ inside)")
        for sub in ("trainB", "trainA2D", "trainA29"):
            if not (root / sub).is_dir():
                raise InputError(f"dataset {root} has no {sub}/ folder (expected trainB/*.npz, trainA2D/*.tif, trainA29/*.tif)")
        names = sorted(p.name for p in (root / "trainB").glob("*.npz"))
        if not names:
            raise InputError(f"dataset {root}/trainB has no .npz files")
        split_file = root / "split.json"
        if split_file.is_file():
            split = json.loads(split_file.read_text())
            train_names = [n for n in split.get("train", []) if n in names]
            val_names = [n for n in split.get("val", []) if n in names]
            if not train_names:
                raise InputError(f"{split_file}: no training file of the split exists in trainB/")
        else:
            train_names, val_names = split_names(names, val_fraction, split_seed)

        def stacks(ns: list[str]) -> list[np.ndarray]:
            out = []
            for n in ns:
                a = load_npz_stack(root / "trainB" / n)
                if a.shape[0] != z_planes:
                    raise InputError(f"{root / 'trainB' / n}: {a.shape[0]} planes (z last), config data.z_planes is {z_planes}")
                out.append(a)
            return out

        train = stacks(train_names)
        val = stacks(val_names)
        s2d = [_read_tif(p) for p in sorted((root / "trainA2D").glob("*.tif"))]
        s29 = [_read_tif(p) for p in sorted((root / "trainA29").glob("*.tif"))]
        if not s2d or not s29:
            raise InputError(f"dataset {root}: trainA2D/ and trainA29/ need .tif files (found {len(s2d)}, {len(s29)})")
        dtype = train[0].dtype.name
        if dtype not in HALF_RANGE:
            raise InputError(f"dataset {root}: dtype {dtype} not supported (uint8, uint16)")
        shapes = {a.shape for a in train + val}
        if len(shapes) != 1:
            raise InputError(f"dataset {root}: trainB stacks differ in shape: {sorted(shapes)}")
        for kind, imgs in (("trainA2D", s2d), ("trainA29", s29)):
            if len({a.shape for a in imgs}) != 1:
                raise InputError(f"dataset {root}: {kind} images differ in shape: {sorted({a.shape for a in imgs})}")
        if s29[0].shape[1] != z_planes:
            raise InputError(f"dataset {root}: trainA29 images are {s29[0].shape}, expected (lateral, {z_planes})")

        def tens(arrs: list[np.ndarray]) -> torch.Tensor:
            a = np.stack(arrs).astype(np.int32 if dtype == "uint16" else np.uint8)
            return torch.from_numpy(a)

        empty = torch.zeros((0, *train[0].shape), dtype=torch.uint8 if dtype == "uint8" else torch.int32)
        return cls(tens(train), tens(val) if val else empty, tens(s2d), tens(s29), dtype, train_names, val_names)

    def with_sharpest_plane_reals(self) -> RoiDataset:
        """The same dataset with its "real" in-focus samples taken from the training stacks themselves:
        sharp2d = the sharpest plane of each training stack (variance of the Laplacian), sharp29 =
        lateral × Z crops of those planes at x = 0, Z, 2Z, … (the notebook's 128×29 crops of in-focus
        images). Real and fake then come from the same tissue, so the discriminator cannot tell them
        apart by brightness or by how much background they show, only by sharpness."""
        m, z, h, w = self.blurred.shape
        if w < z:
            raise InputError(f"stacks are {h}×{w} px in y, x: too narrow for {h}×{z} in-focus crops (need x ≥ {z})")
        planes = []
        for stack in self.blurred.cpu().numpy():
            k = int(np.argmax([variance_of_laplacian(p) for p in stack]))
            planes.append(stack[k])
        sharp2d = torch.from_numpy(np.stack(planes)).to(self.blurred.device)
        sharp29 = torch.cat([sharp2d[:, :, c : c + z] for c in range(0, w - z + 1, z)])
        return RoiDataset(self.blurred, self.val, sharp2d, sharp29.contiguous(), self.dtype, self.train_names, self.val_names)

    def with_matched_reals(self) -> RoiDataset:
        """The same dataset with its in-focus files (trainA2D, trainA29) brightness-matched to the
        training stacks' sharpest planes (`match_brightness`): D_S can no longer tell real from fake
        by brightness alone (the Huron trainA2D patches: mean 168 vs the stacks' 137)."""
        ref = self.with_sharpest_plane_reals().sharp2d.cpu().numpy()
        dev = self.sharp2d.device
        s2 = torch.from_numpy(match_brightness(self.sharp2d.cpu().numpy(), ref, self.dtype)).to(dev)
        s29 = torch.from_numpy(match_brightness(self.sharp29.cpu().numpy(), ref, self.dtype)).to(dev)
        return RoiDataset(self.blurred, self.val, s2, s29, self.dtype, self.train_names, self.val_names)

    def to(self, device: torch.device | str) -> RoiDataset:
        return RoiDataset(self.blurred.to(device), self.val.to(device), self.sharp2d.to(device), self.sharp29.to(device),
                          self.dtype, self.train_names, self.val_names)

    def sample(
        self, rng: np.random.Generator, batch: int, *, crop: int | None = None, flips: bool = False, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One training batch drawn with `rng` (uniform, with replacement).

        Returns float32 in [-1, 1]: x (N, 1, Z, Y, X), y2d (N, 1, Y', X'), y29 (N, 1, L', Z), cropped to
        `crop` (and the stack size) in y, x and lateral.
        """
        _, _, h, w = self.blurred.shape
        size = min(h, w, self.sharp2d.shape[1], self.sharp2d.shape[2], self.sharp29.shape[1])
        if crop is not None:
            size = min(size, crop)
        ib = rng.integers(0, self.blurred.shape[0], batch)
        i2 = rng.integers(0, self.sharp2d.shape[0], batch)
        i29 = rng.integers(0, self.sharp29.shape[0], batch)
        xs, y2s, y29s = [], [], []
        for n in range(batch):
            oy, ox = (int(v) for v in rng.integers(0, [h - size + 1, w - size + 1]))
            v = self.blurred[int(ib[n]), :, oy : oy + size, ox : ox + size]
            sy, sx = (int(v) for v in rng.integers(0, [self.sharp2d.shape[1] - size + 1, self.sharp2d.shape[2] - size + 1]))
            s2 = self.sharp2d[int(i2[n]), sy : sy + size, sx : sx + size]
            sl = int(rng.integers(0, self.sharp29.shape[1] - size + 1))
            s29 = self.sharp29[int(i29[n]), sl : sl + size, :]
            if flips:
                fy, fx, tr, f2y, f2x, f29 = (bool(b) for b in rng.integers(0, 2, 6))
                if fy:
                    v = v.flip(-2)
                if fx:
                    v = v.flip(-1)
                if tr:
                    v = v.transpose(-1, -2)
                if f2y:
                    s2 = s2.flip(-2)
                if f2x:
                    s2 = s2.transpose(-1, -2)
                if f29:
                    s29 = s29.flip(-2)
            xs.append(v)
            y2s.append(s2)
            y29s.append(s29)
        x = to_unit(torch.stack(xs).to(device, non_blocking=True), self.dtype).unsqueeze(1)
        y2d = to_unit(torch.stack(y2s).to(device, non_blocking=True), self.dtype).unsqueeze(1)
        y29 = to_unit(torch.stack(y29s).to(device, non_blocking=True), self.dtype).unsqueeze(1)
        return x.contiguous(), y2d.contiguous(), y29.contiguous()

    def fixed_val(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The first validation stack (or first training stack) as float32 (1, 1, Z, Y, X)."""
        v = self.val[0] if self.val.shape[0] else self.blurred[0]
        return to_unit(v.to(device), self.dtype)[None, None]


# --------------------------------------------------------------------------------------------------
# ROI extraction from whole-slide z-stacks


def variance_of_laplacian(plane: np.ndarray) -> float:
    """Focus measure of a 2D plane: variance of its 4-neighbour Laplacian."""
    p = plane.astype(np.float32)
    lap = -4 * p[1:-1, 1:-1] + p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]
    return float(lap.var())


def tissue_mask(overview: np.ndarray) -> np.ndarray:
    """Tissue = darker than the light background. overview (Y, X) → bool (Y, X).

    Threshold: Otsu on the overview when it separates two classes, else halfway between the 5th and
    95th percentiles.
    """
    o = overview.astype(np.float32)
    lo, hi = np.percentile(o, [5, 95])
    if hi - lo < 1e-6:
        return np.zeros(o.shape, dtype=bool)
    try:
        from skimage.filters import threshold_otsu

        t = float(threshold_otsu(o))
    except Exception:  # pragma: no cover - skimage is a dependency
        t = (lo + hi) / 2
    if not lo < t < hi:
        t = (lo + hi) / 2
    return o < t


def sample_roi_origins(mask: np.ndarray, scale: tuple[float, float], shape_yx: tuple[int, int], roi: int, n: int,
                       rng: np.random.Generator, min_tissue: float = 0.5, max_tries: int = 200) -> list[tuple[int, int]]:
    """Up to n distinct top-left (y, x) corners of roi×roi ROIs with ≥ min_tissue tissue (by the mask).

    `scale` = level-0 pixels per mask pixel in (y, x).
    """
    h, w = shape_yx
    if h < roi or w < roi:
        raise InputError(f"image is {h}×{w} px in y, x, smaller than one ROI of {roi}×{roi}")
    out: list[tuple[int, int]] = []
    seen = set()
    for _ in range(n * max_tries):
        if len(out) >= n:
            break
        y = int(rng.integers(0, h - roi + 1))
        x = int(rng.integers(0, w - roi + 1))
        if (y, x) in seen:
            continue
        y0, x0 = int(y / scale[0]), int(x / scale[1])
        y1, x1 = max(y0 + 1, int(np.ceil((y + roi) / scale[0]))), max(x0 + 1, int(np.ceil((x + roi) / scale[1])))
        if mask[y0:y1, x0:x1].mean() >= min_tissue:
            seen.add((y, x))
            out.append((y, x))
    return out


def extract_rois(
    stack: Any,
    out: str | Path,
    *,
    n: int,
    roi: int = 128,
    seed: int = 0,
    val_fraction: float = 0.05,
    in_focus: Any | None = None,
    overview: np.ndarray | None = None,
    prefix: str = "roi",
    source: str = "",
) -> dict[str, Any]:
    """Cut n tissue ROIs from a z-stack and write them in the ZSE-GAN layout (see module docstring).

    Args:
        stack: array-like (Z, Y, X) uint8/uint16 (numpy or zarr; only ROIs are read).
        out: output folder (trainB/, trainA2D/, trainA29/, split.json, rois.json).
        in_focus: optional in-focus source, (Y, X) or (1, Y, X) or (Z', Y, X) (then its sharpest
            plane per ROI), same y, x grid as `stack`. Without it the sharpest plane of each ROI
            (variance of Laplacian) is the in-focus patch.
        overview: optional small (Y', X') image for the tissue mask (e.g. a low pyramid level's
            mean over z); default: the central plane of `stack` (read whole).
    Returns: the metadata written to rois.json.
    """
    shape = tuple(int(s) for s in stack.shape)
    if len(shape) != 3:
        raise InputError(f"expected a (Z, Y, X) stack, got shape {shape}")
    z, h, w = shape
    dtype = np.dtype(stack.dtype).name
    if dtype not in HALF_RANGE:
        raise InputError(f"stack dtype {dtype} not supported (uint8, uint16)")
    if in_focus is not None:
        fs = tuple(int(s) for s in in_focus.shape)
        if fs[-2:] != (h, w):
            raise InputError(f"in-focus image is {fs[-2:]} in y, x, the stack is {(h, w)}: they must share the grid")
    rng = np.random.default_rng(seed)
    if overview is None:
        overview = np.asarray(stack[z // 2])
    mask = tissue_mask(np.asarray(overview))
    scale = (h / mask.shape[0], w / mask.shape[1])
    origins = sample_roi_origins(mask, scale, (h, w), roi, n, rng)
    if not origins:
        raise InputError(f"no {roi}×{roi} ROI with ≥ 50% tissue found (tissue = darker than the background)")
    root = Path(out)
    for sub in ("trainB", "trainA2D", "trainA29"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    import tifffile

    records = []
    names = []
    for k, (y, x) in enumerate(origins):
        name = f"{prefix}_{k:05d}"
        v = np.asarray(stack[:, y : y + roi, x : x + roi])
        if in_focus is not None:
            f = np.asarray(in_focus[..., y : y + roi, x : x + roi])
            if f.ndim == 3:
                f = f[int(np.argmax([variance_of_laplacian(p) for p in f]))]
            patch = f
            focal = None
        else:
            focal = int(np.argmax([variance_of_laplacian(p) for p in v]))
            patch = v[focal]
        # an in-focus "vertical section": a roi × Z crop of the in-focus patch (lateral, z)
        if patch.shape[1] < z:
            raise InputError(f"ROI of {roi} px is narrower than the {z} planes needed for a vertical crop")
        cx = int(rng.integers(0, patch.shape[1] - z + 1))
        crop29 = np.ascontiguousarray(patch[:, cx : cx + z])
        np.savez_compressed(root / "trainB" / f"{name}.npz", arr_0=np.moveaxis(v, 0, -1))
        tifffile.imwrite(root / "trainA2D" / f"{name}.tif", np.ascontiguousarray(patch))
        tifffile.imwrite(root / "trainA29" / f"{name}.tif", crop29)
        names.append(f"{name}.npz")
        records.append({"name": name, "y": y, "x": x, "focal_plane": focal})
    train, val = split_names(names, val_fraction, seed)
    (root / "split.json").write_text(json.dumps({"train": train, "val": val}, indent=1))
    meta = {"source": source, "shape_zyx": list(shape), "dtype": dtype, "roi": roi, "seed": seed,
            "in_focus": in_focus is not None, "rois": records}
    (root / "rois.json").write_text(json.dumps(meta, indent=1))
    return meta
