"""`mmrag eval retrieval|captions|vqa|grounding`: models measured on the user's own labelled
pictures, in the standard dataset formats, side by side."""
