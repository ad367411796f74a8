"""Model files: where they are looked for, and how they are loaded safely."""
