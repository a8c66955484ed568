import torch

from hdrzoo.demo import run_demo
from hdrzoo.io import read_hdr


def test_demo_trains_merges_and_writes_every_output(tmp_path):
    torch.manual_seed(0)
    scores = run_demo(out_dir=tmp_path, model="safnet_s", minutes=1.0, max_steps=3)
    assert set(scores) == {"reference frame", "classic", "safnet_s"}
    for name in ("classic", "safnet_s", "ground_truth"):
        hdr = read_hdr(tmp_path / f"{name}.exr")
        assert hdr.shape == (3, 256, 384) and torch.isfinite(hdr).all()
    for name in ("comparison.png", "classic.png", "safnet_s.png"):
        assert (tmp_path / name).stat().st_size > 1000
    # The scores printed are the metrics of the written images.
    from hdrzoo import metrics

    gt = read_hdr(tmp_path / "ground_truth.exr")
    for method in ("classic", "safnet_s"):
        written = read_hdr(tmp_path / f"{method}.exr")
        assert abs(float(metrics.psnr_mu(written, gt)) - scores[method]["psnr_mu"]) < 1e-3
    assert scores["classic"]["psnr_mu"] < 30.0  # the unaligned merge ghosts on this scene
