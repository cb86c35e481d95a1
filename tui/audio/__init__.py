"""Audio output: SoundFont discovery and the synth (FluidSynth or silent)."""
