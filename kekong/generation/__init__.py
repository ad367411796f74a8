"""Generation: txt2img / img2img / inpaint with any number of ControlNet units."""
