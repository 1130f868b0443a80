"""The colour step of a crop (issue 30): what the garment mask and its named colour add.

The demo shop's generated product photos, framed whole as the catalog's and a product shot's
crops are, each through every step of :data:`lab.colour.cost.STEPS` (one thread, process CPU
time, best of 3 passes): the old step (the colour descriptor alone), the mask alone, the step
that ships (grid Lab once, descriptor, mask, named colour) and the same with
``crops.remove_background``. ``python -m lab.colour.cost`` measures the same on the dev
catalog's photos and street garments.
"""

from __future__ import annotations

import io
import os

from PIL import Image

from lab.benchmarks import Figures, benchmark, machine

N_CROPS = 60


@benchmark(
    "colour",
    "Core-ms per crop of the colour step (one thread, best of 3 passes over 60 generated "
    "400x500 product photos framed whole): the descriptor alone (before issue 30), the garment "
    "mask alone, the step that ships (descriptor, mask and named colour) and with background "
    "removal; `added` is what shipping the mask and the name costs a crop.",
)
def colour_cost() -> Figures:
    from lab.colour.cost import STEPS, core_ms
    from services.demo_shop.catalog import DemoCatalog
    from services.demo_shop.images import render_image
    from shared.images import to_rgb

    catalog = DemoCatalog.generate(N_CROPS, seed=7)
    items = []
    for product in catalog.products:
        picture = to_rgb(Image.open(io.BytesIO(render_image(product, "front"))))
        items.append((picture, (0.0, 0.0, float(picture.width), float(picture.height))))
    STEPS["new colour step"](*items[0])  # loads the colour model
    figures: Figures = {
        label.replace(" ", "_") + "_core_ms": core_ms(step, items) for label, step in STEPS.items()
    }
    figures["added_core_ms"] = round(
        float(figures["new_colour_step_core_ms"]) - float(figures["old_colour_step_core_ms"]), 3
    )
    figures["crops"] = len(items)
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on the cores
    figures["machine"] = f"{machine()['cores']} cores, {machine()['cpu']}"
    return figures
