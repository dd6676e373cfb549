"""Latency is measured, not sampled once (issue 18, item 8): warm-up, several timed runs, their
median and spread, on the device asked for; the Pareto front goes on the median."""
import torch
from torch import nn

from searches.nas.measure import measure_latency


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.body(x)


def test_ux_latency_warms_up_then_times_several_runs_and_reports_median_and_spread():
    model = Counting()
    got = measure_latency(model, (1, 8, 8), device="cpu", runs=5, warmup_ms=5.0, run_ms=2.0, min_warmup=4)
    assert got["runs"] == 5 and got["warmup_passes"] >= 4 and got["device"] == "cpu"
    assert model.calls == got["warmup_passes"] + got["runs"] * got["passes_per_run"]
    assert 0 < got["min_ms"] <= got["p25_ms"] <= got["median_ms"] <= got["p75_ms"] <= got["max_ms"]
    assert model.training  # the caller's mode is kept


def test_ux_latency_runs_on_the_device_asked_for_and_gives_the_model_back():
    model = Counting()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    got = measure_latency(model, (1, 8, 8), device=device, runs=3, warmup_ms=1.0, run_ms=1.0)
    assert got["device"].startswith(device)
    assert next(model.parameters()).device.type == "cpu"
