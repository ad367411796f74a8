"""The web UI (placeholder until the Blocks app lands)."""


def mount_ui(app) -> None:
    return None
