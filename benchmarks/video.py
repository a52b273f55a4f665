"""``h2ot video``'s speed: lifting throughput of MixSTE-243 unpruned vs HoT vs H2OT, and the pipeline's stages.

1. Lifting: frames/s of :func:`h2ot_core.lifting.lift_sequence` on a clip of ``--frames`` frames (seq2seq
   windows of 243 with the default overlap of 60, batch ``--batch``), fp32, plus bf16 where the CPU has bf16
   kernels (:func:`h2ot_core.device.cpu_bf16_kernels`) or on a GPU. Weights are random: time does not depend
   on them (TPC's clustering is data-dependent, so the input is a smooth random walk, not noise).
2. The pipeline on ``--threads`` cores, per stage: decode (PyAV) of a 640×480 clip of a real photograph
   (scikit-image's astronaut, panned and zoomed), 2D, lifting with the tiny MixSTE and render. The 2D stage runs
   the real detector code; with ``--detector-weights FOLDER`` (the pinned RTMPose-s + YOLOX-tiny ONNX files) it
   runs the real models, else the tests' stand-in ONNX models (then the row measures pre/post-processing only,
   and says so).

    python -m benchmarks.video [--frames 972] [--batch 4] [--repeats 3] [--threads 2] [--detector-weights DIR]

Medians of ``--repeats`` runs, side by side in one process. The table goes to ``benchmarks/results/video.md``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.output import add_out_argument, md_table, measured_line, write_result
from h2ot_core.device import cpu_bf16_kernels, inference_model, resolve_device
from h2ot_core.factory import create_model
from h2ot_core.lifting import lift_sequence
from h2ot_core.names import BACKBONE_INFO

#: label -> (pruner, recoverer, schedule) at MixSTE's official size (243 frames, depth 8)
CONFIGS = {
    "unpruned": ("none", "none", ""),
    "HoT (TPC+TRA)": ("tpc", "tra", BACKBONE_INFO["mixste"].hot_schedule),
    "H2OT (TPS+TRI)": ("tps", "tri", BACKBONE_INFO["mixste"].h2ot_schedule),
}


def _walk(frames: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (np.cumsum(rng.normal(0, 0.004, (frames, 17, 2)), 0) + rng.normal(0, 0.2, (1, 17, 2))).astype(np.float32)


def lifting_rows(frames: int, batch: int, repeats: int, device: torch.device) -> list[list[object]]:
    precisions = ["fp32"] + (["bf16"] if device.type == "cuda" or cpu_bf16_kernels() else [])
    x = _walk(frames)
    rows = []
    for precision in precisions:
        for label, (pruner, recoverer, schedule) in CONFIGS.items():
            torch.manual_seed(0)
            model = inference_model(create_model("mixste", pruner, recoverer, schedule).to(device), precision)
            lift_sequence(model, x[:243], batch_size=batch, precision=precision)  # warm-up
            runs = [lift_sequence(model, x, batch_size=batch, precision=precision).stats for _ in range(repeats)]
            seconds = statistics.median(s.model_seconds for s in runs)
            rows.append([label, schedule or "-", precision, runs[0].windows, f"{frames / seconds:.1f}",
                         f"{1e3 * seconds / frames:.2f}"])
            print(" | ".join(map(str, rows[-1])), flush=True)
    base = {r[2]: float(r[4]) for r in rows if r[0] == "unpruned"}
    for r in rows:
        r.append(f"{float(r[4]) / base[r[2]]:.2f}x")
    return rows


def pipeline_rows(frames: int, repeats: int, weights: Path | None) -> tuple[list[list[object]], str]:
    from PIL import Image
    from skimage import data

    from h2ot_core.video import pipeline
    from h2ot_core.video.detector import PoseDetector
    from h2ot_core.video.render import write_video
    from tests.tiny import TINY

    photo = Image.fromarray(data.astronaut())
    clip = [np.asarray(photo.crop((2.0 * t, 10, 2.0 * t + 480 / (1 + t / 400), 10 + 360 / (1 + t / 400)))
                       .resize((640, 480))) for t in range(frames)]
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "clip.mp4"
        write_video(video, clip, 25)
        if weights is not None:
            from h2ot_core.video.weights import detector_files

            det, pose = detector_files("rtmpose-s", weights, allow_download=False)
            note = "RTMPose-s + YOLOX-tiny"
        else:
            from tests.h2ot_core.video.standin import person_detector, pose_model

            det, pose = person_detector(Path(tmp) / "d.onnx"), pose_model(Path(tmp) / "p.onnx")
            note = "stand-in ONNX models (pre/post-processing only; no detector weights here)"
        lifter = pipeline.prepare_lifter(create_model("mixste", **TINY["mixste"]), "tiny MixSTE",
                                         device=torch.device("cpu"), precision="fp32", source="tiny")
        per_stage: dict[str, list[float]] = {}
        for _ in range(repeats):
            track = pipeline.track_video(video, PoseDetector(det, pose, threads=torch.get_num_threads()))
            results = pipeline.lift_all([lifter], track)
            rendered = pipeline.render(Path(tmp) / "out.mp4", track, results)
            for t in (*track.times, results[0].time, rendered):
                per_stage.setdefault(t.stage.split(" ")[0], []).append(t.ms_per_frame)
    rows = [[stage, f"{statistics.median(v):.2f}", f"{1e3 / statistics.median(v):.1f}"] for stage, v in per_stage.items()]
    total = sum(statistics.median(v) for v in per_stage.values())
    rows.append(["end to end", f"{total:.2f}", f"{1e3 / total:.1f}"])
    return rows, note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=972, help="clip length for lifting (4 × 243)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pipeline-frames", type=int, default=100)
    ap.add_argument("--detector-weights", type=Path, default=None)
    add_out_argument(ap, "video")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    lifting = lifting_rows(args.frames, args.batch, args.repeats, device)
    stages, note = pipeline_rows(args.pipeline_frames, args.repeats, args.detector_weights)
    lines = [f"Lifting a {args.frames}-frame clip with MixSTE-243 (random weights) on {device}, batch {args.batch}, "
             f"median of {args.repeats}:", "",
             *md_table(["model", "schedule", "precision", "windows", "frames/s", "ms/frame", "vs unpruned"], lifting),
             "", f"`h2ot video` pipeline on {args.threads} threads, {args.pipeline_frames} frames of 640×480, tiny "
                 f"MixSTE; 2D: {note}:", "",
             *md_table(["stage", "ms/frame", "FPS"], stages), "",
             measured_line("benchmarks.video", args.threads, str(device)) + f" Took {time.perf_counter() - t0:.0f} s."]
    write_result(lines, args.out)


if __name__ == "__main__":
    main()
