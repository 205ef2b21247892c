"""Observation layouts: named, sized, unit-tagged fields of flat observation vectors.

Policies see flat vectors; everything else (scripted experts, the console, tests) reads them by
field name through a layout, so adding a field never silently shifts another. A layout carries
``OBS_LAYOUT_VERSION``; shipped policies record it and refuse to load into a different layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Bump whenever any observation or goal field is added, removed, resized or reordered.
OBS_LAYOUT_VERSION = 1


@dataclass(frozen=True)
class Field:
    """One field of an observation vector: ``size`` values in ``unit``, described by ``doc``."""

    name: str
    size: int
    unit: str
    doc: str


class ObsLayout:
    """An ordered set of fields making up a flat vector."""

    def __init__(self, fields: tuple[Field, ...], version: int = OBS_LAYOUT_VERSION) -> None:
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate field names in layout: {names}")
        self.fields = fields
        self.version = version
        self._slices: dict[str, slice] = {}
        i = 0
        for f in fields:
            self._slices[f.name] = slice(i, i + f.size)
            i += f.size
        self.size = i

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def slice(self, name: str) -> slice:
        try:
            return self._slices[name]
        except KeyError:
            raise KeyError(f"no field {name!r} in layout; fields are {list(self._slices)}") from None

    def get(self, vector: np.ndarray, name: str) -> np.ndarray:
        """The values of field ``name`` (works on a batch: last axis is the vector)."""
        return np.asarray(vector)[..., self.slice(name)]

    def pack(self, values: dict[str, np.ndarray | float]) -> np.ndarray:
        """Build a vector from ``{field name: values}``; every field must be given."""
        out = np.empty(self.size, dtype=np.float64)
        for f in self.fields:
            out[self._slices[f.name]] = values[f.name]
        return out

    def describe(self) -> list[dict[str, object]]:
        """Rows (name, start, size, unit, doc) documenting the layout."""
        return [
            {
                "name": f.name,
                "start": self._slices[f.name].start,
                "size": f.size,
                "unit": f.unit,
                "doc": f.doc,
            }
            for f in self.fields
        ]

    def signature(self) -> str:
        """A compact string that changes whenever the layout does (for model cards)."""
        return f"v{self.version}:" + ",".join(f"{f.name}[{f.size}]" for f in self.fields)


#: Fields every task's observation starts with (all in the robot base frame).
ROBOT_FIELDS: tuple[Field, ...] = (
    Field("tip_pos_m", 3, "m", "tool-tip position"),
    Field(
        "tip_vel_m_s",
        3,
        "m/s",
        "tool-tip velocity averaged over the last control period",
    ),
    Field("jaw_opening", 1, "1", "jaw opening, 0 closed to 1 fully open"),
    Field(
        "contact_force_N",
        3,
        "N",
        "contact force on the tool at the end of the control period",
    ),
)
