"""Data side: dataset readers (BP4D, DISFA), SynthAU, landmarks, aligned crops, AU heatmaps, loaders."""
