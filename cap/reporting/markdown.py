"""Markdown pieces the report and the leaderboard share."""

from __future__ import annotations

import pandas as pd


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table of ``frame`` (its cells as they are), or "(none)" when it is empty."""
    return frame.to_markdown(index=False, disable_numparse=True) if not frame.empty else "(none)"


def number(value: float, digits: int = 1) -> str:
    """A number at ``digits`` decimals, or "–" where there is none."""
    return "–" if pd.isna(value) else f"{value:.{digits}f}"
