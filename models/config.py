"""Configuration of ZSE-GAN training: architectures, losses, optimiser, data and the loop.

Every knob of the method is a value here, never a subclass: the notebook's reference network
(`zse-gan-paper`) and zse's seam-safe default (`zse-gan`) differ only in `GeneratorConfig` fields.
All models are frozen pydantic models with ``extra="forbid"``: an unknown key is refused with a
`zse.errors.ConfigError` naming it. Presets live in ``models/presets/*.yaml``
(`notebook`, `paper`, `zse-gan`); `load_config` reads a preset name or a YAML path and applies
dotted overrides (``{"data.path": "...", "train.max_steps": 10}``).

Axis convention: generator tensors are (N, 1, Z, Y, X); kernel sizes and paddings are (z, y, x).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zse.errors import ConfigError, validation_message
from zse.yamlfile import load_yaml_mapping

PRESET_DIR = Path(__file__).resolve().parent / "presets"

Triple = tuple[int, int, int]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratorConfig(_Frozen):
    """A 3D encoder / residual / decoder generator (G_S and G_B share it).

    Layout: conv_in (k=`in_kernel`, 1→w0) → two stride-2 convs (w0→w1→w2) → `n_res` residual
    blocks at w2 → two up stages (w2→w1→w0) → conv_out (k=`out_kernel`, w0→1) → tanh.

    Attributes:
        widths: channel widths (w0, w1, w2) of the three resolution levels.
        n_res: residual blocks at the coarsest level.
        in_kernel, out_kernel, out_padding: (z, y, x) kernel sizes; `out_padding` None = k//2.
        norm: normalisation after encoder/decoder convs. "instance" (the notebook) computes
            statistics per tile (seams in tiled inference); "batch" uses running statistics in eval
            mode; "none" is a pure convolution.
        res_norm: normalisation inside residual blocks (notebook: "batch").
        upsample: "transposed" (ConvTranspose3d k3 s2 p1 op1, the notebook; z 8→16→32 and the
            out-kernel depth 6 crops back) or "trilinear"/"nearest" (conv at the coarse level, then
            resize to the exact encoder size: no checkerboard).
        padding_yx: padding mode in y, x ("zeros" = notebook, "reflect" = seam-friendlier borders).
        padding_z: padding mode in z (tiles always span the whole stack, so z padding never seams).
        skip: "none" (notebook) or "add": encoder features added to the decoder at the same level.
        residual: False (notebook): output = tanh(conv_out(h)). True: output = tanh(atanh(x) + conv_out(h))
            with conv_out initialised to zero, so the untrained generator is the identity and training
            learns a correction. This keeps G_S away from the cycle-consistent contrast inversion that a
            randomly initialised G_S can fall into (seen in short runs on the real ROIs).
    """

    widths: Triple = (16, 32, 64)
    n_res: int = Field(6, ge=0, le=32)
    in_kernel: Triple = (5, 5, 5)
    out_kernel: Triple = (6, 5, 5)
    out_padding: Triple | None = (1, 2, 2)
    norm: Literal["instance", "batch", "none"] = "instance"
    res_norm: Literal["instance", "batch", "none"] = "batch"
    upsample: Literal["transposed", "trilinear", "nearest"] = "transposed"
    padding_yx: Literal["zeros", "reflect", "replicate"] = "zeros"
    padding_z: Literal["zeros", "reflect", "replicate"] = "zeros"
    skip: Literal["none", "add"] = "none"
    residual: bool = False

    @field_validator("widths", "in_kernel", "out_kernel")
    @classmethod
    def _positive(cls, v: Triple) -> Triple:
        if any(int(e) < 1 for e in v):
            raise ValueError(f"all entries must be >= 1, got {v}")
        return v


class DiscriminatorConfig(_Frozen):
    """2D PatchGAN: `n_layers` × [Conv2d k4 s2 p1, norm from the 2nd, LeakyReLU 0.2], then the head:
    "k2" (ZSE-GAN's notebook: Conv2d k2 s1 p1) or "pix2pix" (Conv2d k4 s1 p1 to 2·width, norm, LeakyReLU,
    Conv2d k4 s1 p1; with n_layers 3 this is pix2pix/CycleGAN's 70×70 PatchGAN)."""

    ndf: int = Field(32, ge=1)
    n_layers: int = Field(4, ge=1, le=6)
    norm: Literal["instance", "batch", "none"] = "instance"
    head: Literal["k2", "pix2pix"] = "k2"


class UNetConfig(_Frozen):
    """A 3D U-Net generator (`unet3d-gan`; after WFCON-Net's 3D U-Net GAN generator).

    Layout, for L = len(widths) levels: level 0 block (1 → w0) → [down-sample (conv k3, stride 2 in
    y, x and, where `down_z[l]`, in z) → level block (w_l → w_{l+1})] × (L − 1) → [nearest up-sample
    to the encoder level's exact size → conv k3 (w_{l+1} → w_l) → add (or concatenate) the encoder
    features → level block] × (L − 1) → conv k1 (w0 → 1). A level block is `convs` × [PadConv3d k3 →
    norm → LeakyReLU 0.2], with a residual mapping (1×1 projection where widths change) when
    `residual_blocks`. `global_residual`: output = x + correction (the untrained network is the
    identity: conv_out starts at zero); the output is not clamped (the pipeline clips when quantising).

    Attributes:
        widths: channels per level; len − 1 is the number of down-sampling blocks (WFCON: 4).
        down_z: per down-sampling block, whether z is halved too (29 → 15 → 8 …); padded to the
            number of blocks with False.
        convs: convolutions per level block.
        norm: "instance" (WFCON; per-tile statistics, seams when tiled), "batch", "none" (seam-safe).
        padding_yx, padding_z: padding modes ("reflect" in y, x for a seam-safe network).
        skip: "add" or "concat" (WFCON concatenates).
    """

    widths: tuple[int, ...] = (16, 32, 64)
    down_z: tuple[bool, ...] = (True, True)
    convs: int = Field(2, ge=1, le=4)
    residual_blocks: bool = True
    norm: Literal["instance", "batch", "none"] = "none"
    padding_yx: Literal["zeros", "reflect", "replicate"] = "reflect"
    padding_z: Literal["zeros", "reflect", "replicate"] = "replicate"
    skip: Literal["add", "concat"] = "add"
    global_residual: bool = True

    @field_validator("widths")
    @classmethod
    def _widths(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not 1 <= len(v) <= 6 or any(int(e) < 1 for e in v):
            raise ValueError(f"give 1 to 6 positive widths (one per level), got {v}")
        return v


class WDSRConfig(_Frozen):
    """`dualgan-3d` networks (3D-dualHRGAN, Zhou et al.; owner: zse.models.networks.wdsr).

    Generator LR→HR: conv in → `n_blocks` weight-normalised wide-activation residual blocks (WDSR-B:
    1×1×1 expand ×`expansion`, ReLU, 1×1×1 shrink ×`low_rank`, 3×3×3) → conv out → 3D voxel shuffle by
    `scale_zyx`, plus a long skip (the LR input up-sampled to HR). Degrader HR→LR: 3D convolutions, the
    last strided by `scale_zyx`. Critics: 3D conv nets without normalisation or sigmoid.

    Attributes:
        scale_zyx: integer up-sampling factor per axis (z, y, x); z-scans: (2, 1, 1).
    """

    scale_zyx: Triple = (2, 1, 1)
    width: int = Field(16, ge=1)
    n_blocks: int = Field(4, ge=0, le=32)
    expansion: int = Field(4, ge=1)
    low_rank: float = Field(0.8, gt=0)
    padding_yx: Literal["zeros", "reflect", "replicate"] = "reflect"
    padding_z: Literal["zeros", "reflect", "replicate"] = "replicate"
    degrader_width: int = Field(16, ge=1)
    critic_width: int = Field(16, ge=1)

    @field_validator("scale_zyx")
    @classmethod
    def _scale(cls, v: Triple) -> Triple:
        if any(int(e) < 1 or int(e) > 8 for e in v):
            raise ValueError(f"scale factors are whole numbers 1..8 per axis (z, y, x), got {v}")
        return v


class ResNet2DConfig(_Frozen):
    """`cyclegan-2d` generator (COMI, Zhang et al.; owner: zse.models.networks.resnet2d): a 2D ResNet
    (reflection padding, 7×7 stem, two stride-2 down, `n_res` residual blocks, nearest up-sampling +
    conv) applied to every z plane of a tile (planes batched). The discriminator is `ArchConfig.discriminator`.

    Attributes:
        ngf: channels after the stem (2·ngf, 4·ngf after the two downs; COMI 64).
        n_res: residual blocks at 1/4 resolution (COMI 9); the y, x radius is 15 + 8·n_res px (by impulse).
        norm: "instance" (COMI; per-tile statistics: seams when tiled), "batch", "none" (seam-safe).
        padding: every conv's padding ("reflect" as CycleGAN; the authors' Keras code pads with zeros).
        global_residual: output = input + tanh(out) (the authors' code), `out` zero-initialised so the
            untrained generator is the identity; False: output = tanh(out).
    """

    ngf: int = Field(64, ge=1)
    n_res: int = Field(9, ge=0, le=32)
    norm: Literal["instance", "batch", "none"] = "instance"
    padding: Literal["reflect", "zeros"] = "reflect"
    global_residual: bool = True


class ArchConfig(_Frozen):
    """The networks. `name` is the model kind recorded in checkpoints; `kind` picks the method:
    "zse-gan" (G_S, G_B: `generator`; D_S, D_B: `discriminator`), "unet3d-gan" (one generator:
    `unet`; one discriminator on real in-focus planes: `discriminator`), "dualgan-3d" (`wdsr`: z
    super-resolution) or "cyclegan-2d" (`resnet2d` per plane; `discriminator`)."""

    name: str = "zse-gan-paper"
    kind: Literal["zse-gan", "unet3d-gan", "dualgan-3d", "cyclegan-2d"] = "zse-gan"
    generator: GeneratorConfig = GeneratorConfig()
    unet: UNetConfig = UNetConfig()
    wdsr: WDSRConfig = WDSRConfig()
    resnet2d: ResNet2DConfig = ResNet2DConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()


class WeightSpec(_Frozen):
    """A per-plane weight vector over the Z planes of a stack.

    kind:
        "notebook": the authors' formula (`losses.notebook_alpha` / `notebook_cycle_weights`).
        "vector": the explicit `values` (length Z).
        "focus-distance": lo + (hi − lo)·(|i − c| / max|i − c|)^power, c = `focal_plane`
            (None: the centre plane (Z−1)/2).
        "sharpness": per stack, lo + (hi − lo)·(1 − s_i / max s)^power with s_i the variance of the
            Laplacian of plane i of the blurred input (sharpest plane gets `lo`).
        "uniform": all ones.
    """

    kind: Literal["notebook", "vector", "focus-distance", "sharpness", "uniform"] = "notebook"
    values: tuple[float, ...] | None = None
    lo: float = 1.0
    hi: float = 1.67
    power: float = Field(1.0, gt=0)
    focal_plane: int | None = None

    @model_validator(mode="after")
    def _check(self) -> WeightSpec:
        if self.kind == "vector" and not self.values:
            raise ValueError("kind 'vector' needs 'values' (one weight per z plane)")
        return self


class LossConfig(_Frozen):
    """Loss terms (see docs/training.md).

    Attributes:
        kind: "lsgan" (the notebook: MSE to 1/0) or "paper-log" (the paper's log-likelihood; its
            exponents p and α become multipliers of the log terms, computed with BCE-with-logits;
            the generator uses the non-saturating form −log D(G(x))).
        p: share of vertical sections in the D_S terms (notebook 0.35).
        alpha: per-plane weights of the horizontal adversarial terms (notebook 1.00 → 1.67).
        cycle_weights: per-plane weights of the cycle L1 (notebook 1.03 → 3.05).
        lambda_cycle: cycle weight (10.5); cycle_reduce: "max" (notebook) or "mean" over planes;
            cycle_norm: "l1" (notebook), "l2" or "charbonnier" (smooth at the identity).
        lambda_identity: identity weight (0.5).
        d_factor: the discriminator losses are (real + fake)·d_factor (0.5).
        pool_size: image pools of fake volumes for the discriminators (50).
        lambda_fidelity, fidelity_sigma: optional low-pass fidelity (not in the notebook: 0 there):
            L1 between Gaussian low-passes (σ px in y, x, per plane) of G_S(x) and x. Deblurring
            keeps the local mean intensity; this rules out contrast inversion, a cycle-consistent
            solution the adversarial and cycle terms alone allow. fidelity_norm: "l1" or "l2"
            (mean squared difference: no pull at all while G_S is still the identity).
        cycle_warmup_steps: for the first N steps the cycle term (and the D_B term of L_G) trains
            G_B only: G_S's output is detached before G_B (not in the notebook: 0 there). A G_S that
            starts as the identity (`residual: true`) sits at the kink of the cycle L1, whose
            subgradient then outweighs the adversarial one 20–80× and keeps G_S there; in the warm-up
            G_S moves under the adversarial term and G_B learns to undo it.
    """

    kind: Literal["lsgan", "paper-log"] = "lsgan"
    p: float = Field(0.35, ge=0.0, le=1.0)
    alpha: WeightSpec = WeightSpec(kind="notebook")
    cycle_weights: WeightSpec = WeightSpec(kind="notebook", lo=1.03, hi=3.05)
    lambda_cycle: float = Field(10.5, ge=0.0)
    cycle_reduce: Literal["max", "mean"] = "max"
    cycle_norm: Literal["l1", "l2", "charbonnier"] = "l1"
    lambda_identity: float = Field(0.5, ge=0.0)
    d_factor: float = Field(0.5, ge=0.0)
    pool_size: int = Field(50, ge=0)
    lambda_fidelity: float = Field(0.0, ge=0.0)
    fidelity_sigma: float = Field(8.0, gt=0.0)
    fidelity_norm: Literal["l1", "l2"] = "l1"
    cycle_warmup_steps: int = Field(0, ge=0)


class PhysicsLossConfig(_Frozen):
    """Losses of `unet3d-gan` (docs/training.md): supervised on synthetic pairs, then a real-data phase.

    L_G = λ_l1 · L1(G(x_syn), t_syn) + λ_vgg · VGG(G(x_syn), t_syn)                      (every step)
        + [step ≥ finetune_start] · ( λ_adv · ½·MSE(D(G(x_real)[z=i]), 1)     i in-slice planes
                                    + λ_keep · L1(HP(G(x_real)[z=k]), HP(x_real[z=k])) )  k = sharpest
    L_D = ½·[ MSE(D(real in-focus plane), 1) + MSE(D(G(x_real)[z=i]), 0) ]  (real-data phase only)
    t_syn is the optical-section truth of the pair synthesiser; HP = v − Gaussian_σ(v) per plane
    (σ = `keep_sigma` px): the real stack's in-focus detail stays where it is, so depths are not
    merged. WFCON's recipe: LSGAN + λ·L1 + ζ·VGG with λ = 2, ζ = 0.01.

    Attributes:
        vgg_weights: local VGG-19 weights file (torchvision's `features.N.weight` key names, loaded
            with weights_only=True); required when `lambda_vgg` > 0, never downloaded.
        vgg_layer: features up to this ReLU of VGG-19 ("relu1_2", "relu2_2", "relu3_4"; WFCON-style).
        adv_half_planes: the adversarial term sees planes within ± this of the sharpest input plane
            (real stacks' outer planes focus above and below the tissue: they must stay empty).
    """

    lambda_l1: float = Field(2.0, ge=0.0)
    lambda_vgg: float = Field(0.0, ge=0.0)
    vgg_weights: str | None = None
    vgg_layer: Literal["relu1_2", "relu2_2", "relu3_4"] = "relu2_2"
    lambda_adv: float = Field(0.0, ge=0.0)
    lambda_keep: float = Field(0.0, ge=0.0)
    keep_sigma: float = Field(2.0, gt=0.0)
    adv_half_planes: int = Field(5, ge=0)
    finetune_start: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> PhysicsLossConfig:
        if self.lambda_vgg > 0 and not self.vgg_weights:
            raise ValueError("lambda_vgg > 0 needs vgg_weights: a local VGG-19 weights file (zse never downloads weights)")
        return self


class DualGANConfig(_Frozen):
    """`dualgan-3d` training (zse.models.train_dualgan): losses, optimisers and unpaired LR/HR data.

    WGAN-GP for both GANs (gradient penalty `lambda_gp`), L1 cycle losses both ways (`lambda_cycle`);
    RMSprop for the critics, Adam for the generators (rates in `lr_critic`, `lr_g`; Adam's `betas_g`),
    `n_critic` critic steps per generator step.

    Data (`zse.models.zsr_data`; only the simulator is built, no folder of real scans): unpaired widefield
    z-scans of phantoms (`zse.models.simulator`) imaged with NA `na` at the coarse focal step `z_step_um`
    (LR, `lr_planes` planes) and, from other phantom draws, at the fine step `z_step_um`/sz (HR,
    sz·`lr_planes` planes over the same depth). A bank of `phantoms` volumes per domain (side
    `phantom_side` px, seeds from `phantom_seed_offset`; the benchmark uses seeds below it) is imaged
    once; each sample is a random crop (`crop_z` LR planes ↔ sz·`crop_z` HR planes, `crop_yx` px) with
    random flips, shot noise (`photons` e⁻ at I0 = `background`·255) and read noise (grey levels).
    """

    lambda_gp: float = Field(10.0, ge=0.0)
    lambda_cycle: float = Field(10.0, ge=0.0)
    lambda_adv: float = Field(1.0, ge=0.0, description="weight of the generators' adversarial terms (paper: 1)")
    lr_g: float = Field(1e-4, gt=0)
    lr_critic: float = Field(1e-4, gt=0)
    betas_g: tuple[float, float] = (0.5, 0.999)
    n_critic: int = Field(1, ge=1)
    na: float = Field(0.75, gt=0.0, lt=1.0)
    z_step_um: float = Field(1.0, gt=0.0)
    lr_planes: int = Field(29, ge=3, le=64)
    crop_z: int = Field(12, ge=2)
    crop_yx: int = Field(32, ge=8)
    phantoms: int = Field(4, ge=1)
    phantom_side: int = Field(96, ge=16)
    phantom_seed_offset: int = Field(300000, ge=1000)
    photons: float = Field(20000.0, gt=0.0)
    read_noise: float = Field(0.5, ge=0.0)
    background: float = Field(0.95, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _check_crop(self) -> DualGANConfig:
        if self.crop_z > self.lr_planes:
            raise ValueError(f"crop_z {self.crop_z} exceeds lr_planes {self.lr_planes} (a crop is part of one LR scan)")
        if self.crop_yx > self.phantom_side:
            raise ValueError(f"crop_yx {self.crop_yx} exceeds phantom_side {self.phantom_side}")
        return self


class CycleGANConfig(_Frozen):
    """`cyclegan-2d` training (zse.models.train_cyclegan): COMI's losses, Adam, linear decay over the second
    half; unpaired blurred planes x (any plane of a training stack) vs in-focus patches y (`data.reals`).

        L_G = λ_adv · [½MSE(D_S(G_S(x)), 1) + ½MSE(D_B(G_B(y)), 1)]                          (LSGAN)
            + λ_content · [d(φ(G_S(x)), φ(x)) + d(φ(G_B(y)), φ(y))]       φ: VGG-19 up to `vgg_layer`
            + λ_cycle · [d(G_B(G_S(x)), x) + d(G_S(G_B(y)), y)]     (in φ's space if cycle_space "vgg")
            + λ_identity · [d(G_S(y), y) + d(G_B(x), x)]
        L_D = ½[MSE(D_S(y), 1) + MSE(D_S(G_S(x)), 0)] + ½[MSE(D_B(x), 1) + MSE(D_B(G_B(y)), 0)]
    d is the mean absolute ("l1") or squared ("mse") difference (`distance`). COMI's content term compares
    the output with the *paired* in-focus image; the data here are unpaired, so the content target is the
    source image itself (the output keeps the input's VGG content).

    Attributes:
        vgg_weights: local VGG-19 weights file (torchvision key names, weights_only=True), required when
            the content term or a "vgg" cycle is on; zse never downloads weights.
        vgg_layer: features up to this ReLU (COMI's code: Keras VGG19 layer 9 = block3_conv3 = relu3_3).
    """

    lambda_adv: float = Field(1.0, ge=0.0)
    lambda_content: float = Field(0.0, ge=0.0)  # COMI: 1 (preset cyclegan-2d); 0 here so no VGG file is needed
    lambda_cycle: float = Field(0.001, ge=0.0)
    lambda_identity: float = Field(0.0, ge=0.0)
    distance: Literal["l1", "mse"] = "l1"
    cycle_space: Literal["pixel", "vgg"] = "pixel"
    vgg_weights: str | None = None
    vgg_layer: Literal["relu1_2", "relu2_2", "relu3_3", "relu3_4"] = "relu3_3"

    @property
    def needs_vgg(self) -> bool:
        return self.lambda_content > 0 or (self.cycle_space == "vgg" and self.lambda_cycle > 0)

    @model_validator(mode="after")
    def _check(self) -> CycleGANConfig:
        if self.needs_vgg and not self.vgg_weights:
            raise ValueError("lambda_content > 0 (or a 'vgg' cycle) needs vgg_weights: a local VGG-19 weights file "
                             "(zse never downloads weights); set lambda_content to 0 to train without it")
        return self


class OptimConfig(_Frozen):
    """Adam for both generators (one optimiser) and both discriminators (another), as the notebook;
    `separate_generators`: one Adam for G_S and one for G_B (each with its own moment estimates, so the
    large cycle gradients of G_B do not set G_S's step sizes)."""

    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "linear-decay", "cosine"] = "constant"
    decay_start: float = Field(0.5, ge=0.0, le=1.0)  # fraction of max_steps where linear decay starts
    grad_clip: float | None = None
    separate_generators: bool = False


class PairConfig(_Frozen):
    """The pair synthesiser of `unet3d-gan` (`zse.models.pairs`): ranges of the imaging drawn per sample.

    Absorption volumes come from the phantom (`zse.models.simulator`, seeds `phantom_seeds`, a bank made
    once per z-step) or from real in-focus content (sharpest planes of the training stacks and
    brightness-matched trainA2D patches) stacked as thin layers filling a section; `layers_fraction`
    of the samples are of the second kind. Each sample is imaged through a widefield PSF drawn from
    `na` × `z_step_um` (kept out of the benchmark's PSFs), with its section centre shifted by up to
    ±`focus_shift` planes, I0 = `background` × 255, shot noise (`photons` e⁻ at I0) and read noise
    (grey levels), quantised to 8 bits; the target is the optical-section truth (same as `zse synth`).
    """

    na: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9)
    z_step_um: tuple[float, ...] = (1.0, 1.2, 1.6, 1.8)
    section_um: tuple[float, float] = (14.0, 24.0)
    focus_shift: int = Field(3, ge=0)
    background: tuple[float, float] = (0.85, 0.97)
    photons: tuple[float, float] = (5000.0, 40000.0)
    read_noise: tuple[float, float] = (0.3, 1.5)
    layers_fraction: float = Field(0.5, ge=0.0, le=1.0)
    phantom_seeds: int = Field(6, ge=1, description="phantom volumes per z-step in the bank")
    phantom_side: int = Field(256, ge=64)
    phantom_seed_offset: int = Field(100000, ge=0, description="bank seeds start here (the benchmark uses small seeds)")


class DataConfig(_Frozen):
    """Training data in the ZSE-GAN layout (trainB/*.npz z-last, trainA2D/*.tif, trainA29/*.tif).

    Attributes:
        path: dataset folder (relative paths are resolved against the current directory).
        z_planes: planes per stack (29).
        val_fraction, split_seed: deterministic split of trainB by a hash of file name and seed
            (a `split.json` in the folder, written by `zse extract-rois`, takes precedence).
        crop_yx: random crop size in y, x of each training stack (None: whole 128×128 ROI).
        flips: random flips/transposes in y, x (the notebook has no augmentation).
        to_device: keep the whole (uint8) dataset on the training device.
        reals: where D_S's "real" in-focus samples come from: "files" (trainA2D/, trainA29/, as the
            notebook) or "sharpest-plane" (the sharpest plane of each training stack and lateral × Z
            crops of it; what `zse extract-rois` does without --in-focus). On the Huron ROIs the
            trainA2D patches are brighter than the stacks (mean 0.56 vs −0.03 in [−1, 1]), and a
            discriminator learns brightness before sharpness. "files-matched": the files with their
            mean and standard deviation mapped linearly onto the training stacks' sharpest planes'.
    """

    path: str = "../shared/data/zse-gan-huron"
    z_planes: int = Field(29, ge=3)
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    split_seed: int = 0
    crop_yx: int | None = Field(None, ge=16)
    flips: bool = False
    to_device: bool = True
    reals: Literal["files", "files-matched", "sharpest-plane"] = "files"
    pairs: PairConfig = PairConfig()


class TrainConfig(_Frozen):
    """The loop: steps, logging, checkpoints, precision, device, seeds."""

    seed: int = 0
    batch_size: int = Field(1, ge=1)
    max_steps: int = Field(40000, ge=1)
    max_minutes: float | None = Field(None, gt=0)
    log_every: int = Field(10, ge=1)
    image_every: int = Field(500, ge=1)
    ckpt_every: int = Field(1000, ge=1)
    amp: Literal["none", "bf16"] = "none"
    device: str = "cpu"
    deterministic: bool = False
    compile: bool = False
    tile_yx: int = Field(128, ge=8)


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
"""A run name: one folder name (`zse train` writes into runs/<name>), never a path."""


class Config(_Frozen):
    """A complete training configuration (what `zse train CONFIG.yaml` reads).

    `name` names the run; `zse train` without `--out` writes into runs/<name>, so it must be a single
    folder name (`RUN_NAME`: letters, digits, '.', '_', '+', '-'; no '/', '\\', '..' or absolute path).
    """

    name: str = "custom"
    arch: ArchConfig = ArchConfig()
    loss: LossConfig = LossConfig()
    physics: PhysicsLossConfig = PhysicsLossConfig()
    dualgan: DualGANConfig = DualGANConfig()
    cyclegan: CycleGANConfig = CycleGANConfig()
    optim: OptimConfig = OptimConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    @field_validator("name")
    @classmethod
    def _run_name(cls, v: str) -> str:
        if not RUN_NAME.fullmatch(v) or ".." in v:
            raise ValueError("a run name is one folder name (letters, digits, '.', '_', '+', '-'; at most 100; "
                             "no path separator, '..' or absolute path); choose the folder with --out")
        return v


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    node = d
    parts = key.split(".")
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{key}': '{p}' is not a section")
        node = child
    node[parts[-1]] = value


def preset_names() -> list[str]:
    """Names of the bundled presets (file stems in models/presets)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def config_from_dict(data: dict[str, Any], source: str = "(dict)") -> Config:
    """Validate a nested dict into a `Config`; unknown keys or bad values raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"configuration {source} must be a mapping, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration {source}: {validation_message(exc)}") from None


def load_config(spec: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read a preset name (`notebook`, `paper`, `zse-gan`) or a YAML file, apply dotted overrides.

    Raises:
        ConfigError: file missing, not YAML, unknown key, invalid value.
    """
    path = Path(spec)
    if not path.exists() and (PRESET_DIR / f"{spec}.yaml").exists():
        path = PRESET_DIR / f"{spec}.yaml"
    if not path.is_file():
        raise ConfigError(f"configuration '{spec}' is neither a file nor a preset (presets: {', '.join(preset_names())})")
    data = load_yaml_mapping(path, "configuration")
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    return config_from_dict(data, str(path))


def config_sections_differ(recorded: dict[str, Any], cfg: Config) -> list[str]:
    """Sections (other than `train`, which a resume may change) in which the configuration `recorded` in a
    checkpoint differs from `cfg`. The recorded one is read back through `Config` first, so fields added
    to zse since (with their defaults) do not count as differences; an unreadable one differs everywhere."""
    try:
        old = Config.model_validate(recorded).model_dump(mode="json")
    except ValidationError:
        old = {}
    now = cfg.model_dump(mode="json")
    return [k for k in now if k != "train" and old.get(k) != now[k]]

