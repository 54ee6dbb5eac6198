"""An analysis's output: tables (CSV), figures (PNG) and a markdown narrative that embeds them."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from featurebias.errors import ConfigError


@dataclasses.dataclass
class Report:
    """Collects what an analysis found; `write(out)` lays it out as `report.md`, `tables/*.csv`,
    `figures/*.png` and `config.json`."""

    title: str
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)  # name -> Figure
    sections: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        self.tables[_slug(name)] = frame
        return frame

    def figure(self, name: str, fig) -> None:
        import matplotlib.pyplot as plt

        # Out of pyplot's registry (the report holds it, and saves it later): an analysis
        # makes dozens of figures, and pyplot would keep every one alive and warn.
        plt.close(fig)
        self.figures[_slug(name)] = fig

    def text(self, heading: str, markdown: str) -> None:
        self.sections.append((heading, markdown.strip()))

    def write(self, out: str | Path) -> Path:
        """Write everything under `out` (created if needed); returns the report's path."""
        out = writable_folder(out)
        (out / "tables").mkdir(exist_ok=True)
        (out / "figures").mkdir(exist_ok=True)
        for name, frame in self.tables.items():
            frame.to_csv(out / "tables" / f"{name}.csv", index=False)
        for name, fig in self.figures.items():
            fig.savefig(out / "figures" / f"{name}.png", dpi=110, bbox_inches="tight")
        (out / "config.json").write_text(json.dumps(self.config, indent=2) + "\n")
        path = out / "report.md"
        path.write_text(self.markdown())
        return path

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        for heading, body in self.sections:
            lines += [f"## {heading}", "", body, ""]
        if self.tables:
            lines += ["## Tables", ""]
            lines += [f"- [`{n}.csv`](tables/{n}.csv)" for n in self.tables] + [""]
        return "\n".join(lines)


def figure_link(name: str, caption: str) -> str:
    """Markdown that embeds the report's figure `name`."""
    return f"![{caption}](figures/{_slug(name)}.png)"


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A small frame as a GitHub markdown table (no extra dependency)."""
    def cell(v):
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([head, rule, *rows])


def writable_folder(out: str | Path) -> Path:
    """`out` as an existing, writable folder, or a `ConfigError` that says why not."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"cannot write to output folder {out}: {e.strerror or e}") from e
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
