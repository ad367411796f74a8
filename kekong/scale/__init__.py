"""Many requests at once: a manifest's lines run to files, resumable (`run`), in this process or on
a Ray actor pool (`ray_pool`, optional: `pip install 'kekong[ray]'`)."""
