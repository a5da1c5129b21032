"""MinAtar: Atari games as 10x10 object channels (Young & Tian 2019); DQN from pixels."""
