"""Vision-language adapters (captioning, VQA; Florence-2 and Kosmos-2 also ground)."""
