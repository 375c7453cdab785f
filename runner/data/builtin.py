"""Built-in datasets that need no download: ``builtin:lesions`` (synthetic) and ``builtin:digits`` (real).

Each returns (uint8 images (N, S, S, channels), integer labels, split codes (runner.data.split), class
names), deterministic from data.split_seed. Lesions come with fixed train / val / test splits; digits
are one pool that the held-out fractions split.
"""

from __future__ import annotations

import numpy as np

from runner.config import ConfigError, DataConfig
from runner.data.split import TEST, TRAIN, VAL

# The nine ISIC skin-lesion classes the course data used, sorted as folder names would be.
LESION_CLASSES = (
    "actinic_keratosis",
    "basal_cell_carcinoma",
    "dermatofibroma",
    "melanoma",
    "nevus",
    "pigmented_benign_keratosis",
    "seborrheic_keratosis",
    "squamous_cell_carcinoma",
    "vascular_lesion",
)
LESIONS_TRAIN_PER_CLASS = 78  # 702 train images, like the course's ~700
LESIONS_VAL_PER_CLASS = 20  # 180 val images
LESIONS_TEST_PER_CLASS = 20  # 180 test images, drawn after train and val (which stay as they were without them)

# Per class: lesion radius (fraction of the image), elongation, border irregularity, border blur,
# RGB colour (0..1), texture kind, texture strength. Neighbouring classes overlap on purpose so
# that colour alone or size alone does not separate them.
_LESION_STYLE = {
    "actinic_keratosis": (0.22, 1.2, 0.25, 0.10, (0.72, 0.42, 0.38), "scales", 0.30),
    "basal_cell_carcinoma": (0.20, 1.1, 0.10, 0.05, (0.80, 0.55, 0.55), "rings", 0.25),
    "dermatofibroma": (0.14, 1.0, 0.05, 0.10, (0.55, 0.38, 0.30), "none", 0.10),
    "melanoma": (0.26, 1.4, 0.40, 0.06, (0.28, 0.18, 0.15), "spots", 0.45),
    "nevus": (0.15, 1.1, 0.06, 0.05, (0.40, 0.27, 0.20), "none", 0.12),
    "pigmented_benign_keratosis": (0.22, 1.3, 0.20, 0.08, (0.45, 0.32, 0.22), "scales", 0.35),
    "seborrheic_keratosis": (0.20, 1.2, 0.15, 0.04, (0.52, 0.40, 0.28), "spots", 0.30),
    "squamous_cell_carcinoma": (0.21, 1.2, 0.30, 0.10, (0.78, 0.48, 0.42), "scales", 0.40),
    "vascular_lesion": (0.13, 1.1, 0.10, 0.05, (0.70, 0.20, 0.25), "rings", 0.20),
}


def lesions(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Skin-lesion-like images: a blob on skin whose shape, border, colour and texture depend on the class."""
    rng = np.random.default_rng(cfg.split_seed)
    n = len(LESION_CLASSES)
    per_class = LESIONS_TRAIN_PER_CLASS + LESIONS_VAL_PER_CLASS
    labels = np.concatenate([np.repeat(np.arange(n), per_class), np.repeat(np.arange(n), LESIONS_TEST_PER_CLASS)])
    images = np.stack([_lesion(LESION_CLASSES[c], cfg.image_size, rng) for c in labels])
    is_val = np.tile(np.arange(per_class) >= LESIONS_TRAIN_PER_CLASS, n)
    split = np.concatenate([np.where(is_val, VAL, TRAIN), np.full(n * LESIONS_TEST_PER_CLASS, TEST)]).astype(np.int8)
    return _channels(images, cfg.channels), labels, split, list(LESION_CLASSES)


def _lesion(cls: str, size: int, rng: np.random.Generator) -> np.ndarray:
    radius, elong, irregular, blur, colour, texture, strength = _LESION_STYLE[cls]
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    # Skin: a tone drawn per image, with a soft illumination gradient.
    skin = np.array([0.85, 0.66, 0.55]) * rng.uniform(0.65, 1.1) + rng.normal(0, 0.03, 3)
    light = 1 + rng.uniform(-0.15, 0.15) * (xx - 0.5) + rng.uniform(-0.15, 0.15) * (yy - 0.5)
    # Shape: a rotated ellipse whose radius wobbles with the angle (border irregularity).
    cy, cx = 0.5 + rng.normal(0, 0.07, 2)
    r0 = radius * rng.uniform(0.7, 1.3)
    a, b = r0 * elong ** rng.uniform(0.3, 1.0), r0
    theta = rng.uniform(0, np.pi)
    dx, dy = xx - cx, yy - cy
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / a
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / b
    phi = np.arctan2(v, u)
    wobble = sum(rng.normal(0, irregular / k) * np.sin(k * phi + rng.uniform(0, 2 * np.pi)) for k in range(2, 7))
    r = np.hypot(u, v) / (1 + wobble)
    mask = 1 / (1 + np.exp(-(1 - r) / (blur * rng.uniform(0.6, 1.6))))
    # Texture inside the lesion.
    if texture == "spots":
        t = np.zeros_like(xx)
        for _ in range(rng.integers(3, 9)):
            sy, sx = cy + rng.normal(0, r0 / 2), cx + rng.normal(0, r0 / 2)
            t -= np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / (2 * (r0 / 6) ** 2))
    elif texture == "scales":
        t = rng.normal(0, 1, (size, size))
        t = (t + np.roll(t, 1, 0) + np.roll(t, 1, 1) + np.roll(t, (1, 1), (0, 1))) / 2
    elif texture == "rings":
        t = np.sin(np.hypot(u, v) * rng.uniform(6, 10) + rng.uniform(0, 2 * np.pi))
    else:
        t = np.zeros_like(xx)
    lesion = np.array(colour) * rng.uniform(0.75, 1.25) + rng.normal(0, 0.05, 3)
    lesion = lesion[None, None, :] * (1 + strength * rng.uniform(0.5, 1.5) * t[..., None])
    img = (skin[None, None, :] * (1 - mask[..., None]) + lesion * mask[..., None]) * light[..., None]
    # Hairs: a few dark arcs across the image.
    for _ in range(rng.poisson(1.0)):
        p0, d = rng.uniform(0, 1, 2), rng.normal(0, 1, 2)
        d /= np.linalg.norm(d) + 1e-9
        dist = np.abs((xx - p0[0]) * d[1] - (yy - p0[1]) * d[0])
        img *= 1 - 0.5 * np.exp(-((dist * size) ** 2) / 0.6)[..., None]
    img += rng.normal(0, 0.035, img.shape)  # sensor noise
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def digits(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's 1,797 real 8x8 handwritten digits, upscaled to image_size; gray, or gray as RGB."""
    import cv2
    from sklearn.datasets import load_digits

    d = load_digits()
    gray = (d.images * (255 / 16)).astype(np.uint8)
    big = np.stack([cv2.resize(g, (cfg.image_size, cfg.image_size), interpolation=cv2.INTER_LINEAR) for g in gray])
    images = big[..., None] if cfg.channels == 1 else np.repeat(big[..., None], 3, axis=-1)
    return images, d.target.astype(np.int64), np.full(len(d.target), TRAIN, np.int8), [str(i) for i in range(10)]


def _channels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """RGB images as they are, or as grayscale (N, S, S, 1): ITU-R 601-2 luma in PIL's fixed point (convert("L"))."""
    if channels == 3:
        return rgb
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[..., None]


BUILTINS = {"lesions": lesions, "digits": digits}


def dataset_name(cfg: DataConfig) -> str:
    """The built-in dataset ``data.path`` names ("builtin: Digits " -> "digits")."""
    return cfg.path.split(":", 1)[1].strip().lower()


def load_builtin(cfg: DataConfig):
    name = dataset_name(cfg)
    if name not in BUILTINS:
        raise ConfigError(
            f"data.path={cfg.path!r}: unknown built-in dataset; choose one of "
            + ", ".join(f"builtin:{n}" for n in BUILTINS)
        )
    return BUILTINS[name](cfg)
