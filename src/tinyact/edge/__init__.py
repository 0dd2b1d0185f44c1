"""The edge side of TinyAct: cameras → encoder → latents to the cloud; local database and web page."""
