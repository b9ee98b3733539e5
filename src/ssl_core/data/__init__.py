"""Finding, decoding and caching images, and the dataset that turns them into views."""
