"""Configuration: the settings of a run, where each value came from, and the pure rules for paths and trust."""
