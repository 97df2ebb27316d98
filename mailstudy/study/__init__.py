"""Orchestration: experiments (frozen parameters in, tidy rows out), sweeps with a cache, and the notebooks' runner."""
