"""The edge box: source -> sampler -> detector -> tracker -> rules -> publisher, per camera."""
