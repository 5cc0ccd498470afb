"""An experiment knob: sleep before each push so staleness can be raised on one machine."""
from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class InjectedDelay:
    mean_ms: float
    jitter_ms: float = 0.0

    @classmethod
    def parse(cls, text: str) -> "InjectedDelay":
        """'MEAN' or 'MEAN:JITTER' in milliseconds, e.g. '20' or '20:10'."""
        try:
            parts = [float(x) for x in text.split(":")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected MEAN[:JITTER] in ms, got {text!r}") from None
        if len(parts) > 2 or parts[0] < 0 or (len(parts) == 2 and not 0 <= parts[1] <= parts[0]):
            raise argparse.ArgumentTypeError(f"expected MEAN[:JITTER] with 0 <= JITTER <= MEAN, got {text!r}")
        return cls(*parts)

    def sleep(self) -> None:
        jitter = random.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        time.sleep((self.mean_ms + jitter) / 1000.0)
