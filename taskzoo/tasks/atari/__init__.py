"""Atari 2600 games (ale-py) from 84x84 pixels: PPO with the Nature CNN, CleanRL's recipe."""
