"""Render ECG records as paper printouts with realistic degradations and a pixel-exact sidecar.

from ecgvlm.render import render, RenderStyle
page = render(record, layout="3x4+1", augment="light", seed=7)
page.save("out/page.png")  # also writes out/page.json (compact; sidecar="full" for plain JSON)
side = load_sidecar("out/page.json")  # either form, returned in full: leads[i]["x"], ["y"]
"""

from ecgvlm.render.augment import PRESETS, Degradation
from ecgvlm.render.page import Page, render
from ecgvlm.render.sidecar import load_sidecar
from ecgvlm.render.style import LAYOUTS, RenderStyle

__all__ = ["LAYOUTS", "PRESETS", "Degradation", "Page", "RenderStyle", "load_sidecar", "render"]
