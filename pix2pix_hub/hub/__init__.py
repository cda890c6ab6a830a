"""The Hugging Face side of a model: its card (``model_card``), its facts (``model_info``, ``pix2pix.json``), Hub ids
(``ids``), the authors' checkpoints converted (``authors``, ``authors_layout``) and Space folders (``space_build``)."""
