"""Command line: `python -m training COMMAND ...` (`--help` lists them: the generative families,
encoder, attributes, classifier, guides, editor, editor-curve, evaluate, bench, curve, pack).

Each command's options are one frozen dataclass; its fields become the flags, so the
options written into a run folder are exactly what ran. `--dry-run` prints and exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

from training.loop import train_gan
from training.options import BiganOptions, CganOptions, GanOptions, VaeGanOptions, VaeOptions
from training.runs import jsonable

COMMANDS: dict[str, tuple[type, Callable[[Any], object], str]] = {
    "gan": (GanOptions, train_gan, "train a GAN (G, D): --loss dcgan or wgan-gp"),
    "cgan": (CganOptions, train_gan, "train the attribute-conditional GAN G(z, y) with a projected discriminator"),
    "vae": (VaeOptions, train_gan, "train a VAE (E, G)"),
    "vaegan": (VaeGanOptions, train_gan, "train a VAE-GAN (E, G, D; reconstruction in D's feature space)"),
    "bigan": (BiganOptions, train_gan, "train a BiGAN / ALI (E and G jointly against a pair discriminator)"),
}


def _register() -> None:
    from training.attributes import AttributeOptions, compute_attributes
    from training.bench import BenchOptions, run_bench
    from training.classifier import ClassifierOptions, train_classifier
    from training.curve import CurveOptions, quality_curve
    from training.editnet import EditorOptions, train_editor
    from training.editor_curve import EditorCalibrateOptions, EditorCurveOptions, editor_calibrate, editor_curve
    from training.encoder import EncoderOptions, train_encoder
    from training.evaluate import EvaluateOptions, evaluate
    from training.guides import GuideOptions, fit_guides
    from training.pack import PackOptions, pack_sets
    from training.photos import ComparePhotosOptions, compare_photos

    COMMANDS.update(
        {
            "encoder": (EncoderOptions, train_encoder, "train an encoder E against a frozen G"),
            "attributes": (AttributeOptions, compute_attributes, "one latent direction per attribute"),
            "classifier": (ClassifierOptions, train_classifier, "attribute classifier used by evaluate"),
            "guides": (GuideOptions, fit_guides, "the image-to-image editor's frozen attribute guides"),
            "editor": (EditorOptions, train_editor, "train the image-to-image editor (resumable run folder)"),
            "editor-curve": (EditorCurveOptions, editor_curve, "reach against identity: editor snapshots vs a DCGAN"),
            "editor-calibrate": (EditorCalibrateOptions, editor_calibrate, "what strength 1 sends, per attribute"),
            "compare-photos": (ComparePhotosOptions, compare_photos, "models side by side on the same whole photos"),
            "evaluate": (EvaluateOptions, evaluate, "reconstruction and edit-quality report"),
            "bench": (BenchOptions, run_bench, "training throughput against a reference step"),
            "curve": (CurveOptions, quality_curve, "sample quality (FD in frozen features) over CPU minutes of runs"),
            "pack": (PackOptions, pack_sets, "aligned training faces packed to travel (a lent GPU has no ../shared)"),
        }
    )


def _arg_type(tp: Any) -> Callable[[str], Any]:
    """The parser for a field's type; an optional one also reads `none` (`--minutes none`)."""
    args = typing.get_args(tp)
    optional = type(None) in args
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        tp = next(a for a in args if a is not type(None))
    parse: Callable[[str], Any] = tp
    if typing.get_origin(tp) is tuple:
        inner = typing.get_args(tp)[0]
        parse = lambda s: tuple(inner(v) for v in s.split(",") if v)  # noqa: E731
    if optional:
        return lambda s: None if s.lower() == "none" else parse(s)
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (options_cls, _, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        hints = typing.get_type_hints(options_cls)
        for f in dataclasses.fields(options_cls):
            parse = _arg_type(hints[f.name])
            flag = "--" + f.name.replace("_", "-")
            if f.default is dataclasses.MISSING:
                p.add_argument(flag, type=parse, required=True, dest=f.name)
            elif hints[f.name] is bool:
                p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, dest=f.name)
            else:
                p.add_argument(flag, type=parse, default=f.default, dest=f.name, help=f"default: {f.default}")
        p.add_argument("--dry-run", action="store_true", help="print the resolved options and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    _register()
    args = vars(build_parser().parse_args(argv))
    command, dry_run = args.pop("command"), args.pop("dry_run")
    options_cls, fn, _ = COMMANDS[command]
    try:
        options = options_cls(**args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if dry_run:
        print(json.dumps(jsonable(options), indent=2))
        return 0
    result = fn(options)
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
