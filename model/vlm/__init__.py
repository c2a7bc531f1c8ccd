"""Vision-language model backends behind one small protocol (see :mod:`model.vlm.base`)."""
