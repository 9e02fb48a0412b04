"""surge_client: report training telemetry to surge and ask it for the LR.

    from surge_client import Reporter, advise
    with Reporter("my-job", "bs64", batch_size=64) as rep:   # $SURGE_SERVER or server=
        rep.log(step=0, loss=2.3, lr=1e-3)
    advise("my-job", batch_size=256).lr

PyTorch helpers (TwoBatchGradStats, AdviceScheduler) are in surge_client.pytorch.
"""
from .client import (Advice, FlushTimeout, SurgeClient, SurgeError, advise, make_channel,
                     optimizer_spec, resolve_server, Transfer)
from .reporter import PERMANENT_CODES, GradStats, Reporter, ReporterStats

__all__ = ["Advice", "FlushTimeout", "GradStats", "PERMANENT_CODES", "Reporter",
           "ReporterStats", "SurgeClient", "SurgeError", "advise", "make_channel",
           "optimizer_spec", "resolve_server", "Transfer"]
