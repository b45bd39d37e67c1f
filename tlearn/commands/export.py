"""tlearn export RUN --format onnx|torchscript [--int8] [--out FILE]"""
from __future__ import annotations

import json

from ..constants import INT8_MAX_ACCURACY_DROP
from . import examples
from .options import add_deprecated, add_json


def register(sub) -> None:
    p = sub.add_parser("export", help="export a run to ONNX or TorchScript (uint8 images in, probabilities out)",
                       **examples("tlearn export runs/flowers                  # runs/flowers/exports/model.onnx",
                                  "tlearn export runs/flowers --int8           # refused if val accuracy drops"))
    p.add_argument("run", help="run directory")
    p.add_argument("--format", default="onnx", choices=["onnx", "torchscript"], dest="fmt", help="file format")
    p.add_argument("--int8", dest="quantize", action="store_const", const="int8", default=None,
                   help="static int8 quantization (ONNX only), calibrated on train images; its val accuracy delta "
                        "is printed and stored in OUT.json")
    add_deprecated(p, "--quantize", "--int8", "quantize", choices=["int8"])
    p.add_argument("--out", default=None, metavar="FILE",
                   help="output file (default: RUN/exports/model[.int8].onnx|.pt)")
    p.add_argument("--data", default=None, help="data folder for the parity check when the run's own data "
                   "(config.yaml data.root) is not at hand")
    p.add_argument("--max-accuracy-drop", type=float, default=INT8_MAX_ACCURACY_DROP,
                   help="int8: refuse the export if val accuracy drops by more than this")
    add_json(p, "print the export report as JSON instead of a short summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export import export_run

    result = export_run(args.run, args.fmt, args.out, quantize=args.quantize, data=args.data,
                        max_accuracy_drop=args.max_accuracy_drop)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    p = result.parity
    print(f"wrote {result.path} ({result.bytes / 1e6:.1f} MB, {result.format}, {result.quantization})")
    print(f"parity on {p['n']} {p['split']} images vs PyTorch fp32: max |prob diff| {p['max_abs_diff']:.2e}, "
          f"top-1 agreement {p['top1_agreement']:.4f}, accuracy {p['accuracy_pytorch']:.4f} -> "
          f"{p['accuracy_export']:.4f} (delta {p['accuracy_delta']:+.4f})")
    if "size_ratio" in result.extra:
        print(f"size {result.extra['fp32_bytes'] / 1e6:.1f} MB (fp32) -> {result.bytes / 1e6:.1f} MB "
              f"(x{result.extra['size_ratio']:.2f})")
    print(f"report: {result.report_path}")
    return 0
