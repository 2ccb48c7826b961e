"""Training side of cmkd-bounds: datasets, pairing protocols, models, methods and the loop."""
