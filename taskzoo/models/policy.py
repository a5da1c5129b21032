"""RL networks: actor-critics (PPO, A2C), Q-networks (DQN) and value tables (tabular MDPs).

Observations arrive as tensors: float [B, D] vectors for the MLPs, [B, H, W, C] images in
gymnasium's layout for the CNNs (uint8 0-255 for the Nature CNN, MinAtar's 0/1 channels for
its small one; the encoders cast them, so a replay buffer keeps them as bytes). Actor-critics return (logits or action means,
values); the Gaussian head of continuous actions keeps a state-independent log std.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from taskzoo.models import MODELS


def _mlp(sizes: list[int], act: type[nn.Module], *, out_gain: float | None) -> nn.Sequential:
    """An MLP; `out_gain` None keeps PyTorch's default init (what DQN's recipes assume)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        lin = nn.Linear(a, b)
        if out_gain is not None:
            # Orthogonal init (sqrt 2 hidden, small policy head), as in the PPO papers and
            # SB3's ActorCritic; the tuned PPO recipes assume it.
            nn.init.orthogonal_(lin.weight, out_gain if last else math.sqrt(2))
            nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            layers.append(act())
    return nn.Sequential(*layers)


_ACTS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class NatureCNN(nn.Module):
    """The DQN paper's encoder (Mnih et al. 2015): images [B, H, W, C] in 0-255 -> features."""

    def __init__(self, *, in_channels: int, height: int, width: int, features: int = 512) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(),
        )
        with torch.no_grad():
            n = self.conv(torch.zeros(1, in_channels, height, width)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n, features), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(obs.permute(0, 3, 1, 2).float() / 255.0))


class MinAtarCNN(nn.Module):
    """MinAtar's encoder (Young & Tian 2019): one 3x3 convolution of 16 channels, stride 1,
    over [B, H, W, C] 0/1 object channels -> flattened features (1,024 for 10x10)."""

    def __init__(self, *, in_channels: int, height: int, width: int, channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, channels, 3, stride=1), nn.ReLU(),
                                  nn.Flatten())
        self.features = channels * (height - 2) * (width - 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.conv(obs.permute(0, 3, 1, 2).float())


class ActorCritic(nn.Module):
    """Separate policy and value networks over one observation encoder (identity for MLPs)."""

    def __init__(self, *, encoder: nn.Module, feat_dim: int, hidden: tuple[int, ...],
                 num_actions: int, continuous: bool, activation: str) -> None:
        super().__init__()
        act = _ACTS[activation]
        self.encoder = encoder
        self.continuous = continuous
        self.actor = _mlp([feat_dim, *hidden, num_actions], act, out_gain=0.01)
        self.critic = _mlp([feat_dim, *hidden, 1], act, out_gain=1.0)
        self.log_std = nn.Parameter(torch.zeros(num_actions)) if continuous else None

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.encoder(obs)
        return self.actor(x), self.critic(x).squeeze(-1)

    def distribution(self, head: torch.Tensor) -> torch.distributions.Distribution:
        """The action distribution for the actor's output `head`."""
        if self.log_std is not None:
            return torch.distributions.Normal(head, self.log_std.exp().expand_as(head),
                                              validate_args=False)
        return torch.distributions.Categorical(logits=head, validate_args=False)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(actions, their log-probabilities, values) for acting during a rollout."""
        head, values = self(obs)
        if self.continuous:
            dist = self.distribution(head)
            actions = dist.sample()
            return actions, dist.log_prob(actions).sum(-1), values
        # log_softmax + multinomial + gather: the same draw as Categorical in a third of the
        # ops, which matters when each op costs ~8 us on a CPU and a rollout is all small ops
        logp_all = torch.log_softmax(head, -1)
        actions = torch.multinomial(logp_all.exp(), 1)
        return actions.squeeze(1), logp_all.gather(1, actions).squeeze(1), values

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-probabilities of `actions`, policy entropies, values) for the loss."""
        head, values = self(obs)
        if self.continuous:
            dist = self.distribution(head)
            return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1), values
        logp_all = torch.log_softmax(head, -1)
        logp = logp_all.gather(1, actions.long().unsqueeze(1)).squeeze(1)
        return logp, -(logp_all.exp() * logp_all).sum(-1), values

    def act(self, obs: torch.Tensor, *, deterministic: bool = False) -> torch.Tensor:
        head = self.actor(self.encoder(obs))
        if deterministic:
            return head if self.continuous else head.argmax(-1)
        return self.distribution(head).sample()


class QNetwork(nn.Module):
    """Q(s, .) for every discrete action."""

    def __init__(self, *, encoder: nn.Module, feat_dim: int, hidden: tuple[int, ...],
                 num_actions: int, activation: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = _mlp([feat_dim, *hidden, num_actions], _ACTS[activation], out_gain=None)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(obs))

    def act(self, obs: torch.Tensor, *, deterministic: bool = True) -> torch.Tensor:
        return self.forward(obs).argmax(-1)


class QTable(nn.Module):
    """A tabular Q(s, a) (and V(s) = max_a Q) as one parameter, so SGD with lr=alpha on
    0.5 * (Q[s, a] - target)^2 is exactly the tabular Q-learning / Bellman update."""

    def __init__(self, *, num_states: int, num_actions: int) -> None:
        super().__init__()
        self.q = nn.Parameter(torch.zeros(num_states, num_actions, dtype=torch.float64))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        if states.is_floating_point():  # one-hot rows, as the deep-RL encoders give them
            return states.to(self.q.dtype) @ self.q
        return self.q[states.long()]

    def act(self, states: torch.Tensor, *, deterministic: bool = True) -> torch.Tensor:
        return self.forward(states).argmax(-1)


def _encoder(obs_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    if len(obs_shape) == 3:
        enc = NatureCNN(in_channels=obs_shape[2], height=obs_shape[0], width=obs_shape[1])
        return enc, 512
    if len(obs_shape) != 1:
        raise ValueError(f"observations of shape {obs_shape}: expected a vector or an HxWxC image")
    return nn.Identity(), obs_shape[0]


def _vector_encoder(obs_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    """An MLP's input: a vector as it is, a matrix of features (highway-env's vehicles x
    features) flattened; no parameters either way, so weights do not depend on it."""
    if len(obs_shape) <= 1:
        return nn.Identity(), int(obs_shape[-1])
    return nn.Flatten(start_dim=1), int(math.prod(obs_shape))


@MODELS.register("mlp_actor_critic", aliases=("actor_critic",))
def mlp_actor_critic(*, obs_shape: tuple[int, ...], num_actions: int, continuous: bool = False,
                     hidden: tuple[int, ...] = (64, 64), activation: str = "tanh") -> ActorCritic:
    """PPO/A2C policy and value MLPs (separate, as in SB3's MlpPolicy)."""
    enc, dim = _vector_encoder(tuple(obs_shape))
    return ActorCritic(encoder=enc, feat_dim=dim, hidden=tuple(hidden), num_actions=num_actions,
                       continuous=continuous, activation=activation)


@MODELS.register("cnn_actor_critic")
def cnn_actor_critic(*, obs_shape: tuple[int, ...], num_actions: int, continuous: bool = False,
                     hidden: tuple[int, ...] = (), activation: str = "relu") -> ActorCritic:
    """Nature-CNN encoder shared by linear policy and value heads (Atari-style PPO/A2C)."""
    enc, dim = _encoder(tuple(obs_shape))
    return ActorCritic(encoder=enc, feat_dim=dim, hidden=tuple(hidden), num_actions=num_actions,
                       continuous=continuous, activation=activation)


@MODELS.register("mlp_qnet", aliases=("qnet",))
def mlp_qnet(*, obs_shape: tuple[int, ...], num_actions: int, hidden: tuple[int, ...] = (256, 256),
             activation: str = "relu") -> QNetwork:
    """DQN's Q-network over vector observations."""
    enc, dim = _vector_encoder(tuple(obs_shape))
    return QNetwork(encoder=enc, feat_dim=dim, hidden=tuple(hidden), num_actions=num_actions,
                    activation=activation)


@MODELS.register("cnn_qnet")
def cnn_qnet(*, obs_shape: tuple[int, ...], num_actions: int, hidden: tuple[int, ...] = (),
             activation: str = "relu") -> QNetwork:
    """The DQN paper's network for image observations."""
    enc, dim = _encoder(tuple(obs_shape))
    return QNetwork(encoder=enc, feat_dim=dim, hidden=tuple(hidden), num_actions=num_actions,
                    activation=activation)


def _minatar_encoder(obs_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    if len(obs_shape) != 3:
        raise ValueError(f"observations of shape {obs_shape}: MinAtar's network takes HxWxC "
                         f"images (10x10xC)")
    enc = MinAtarCNN(in_channels=obs_shape[2], height=obs_shape[0], width=obs_shape[1])
    return enc, enc.features


@MODELS.register("minatar_qnet")
def minatar_qnet(*, obs_shape: tuple[int, ...], num_actions: int,
                 hidden: tuple[int, ...] = (128,), activation: str = "relu") -> QNetwork:
    """MinAtar's DQN network: conv 16x3x3, then a 128-unit layer to the action values."""
    enc, dim = _minatar_encoder(tuple(obs_shape))
    return QNetwork(encoder=enc, feat_dim=dim, hidden=tuple(hidden), num_actions=num_actions,
                    activation=activation)


@MODELS.register("minatar_actor_critic")
def minatar_actor_critic(*, obs_shape: tuple[int, ...], num_actions: int,
                         continuous: bool = False, hidden: tuple[int, ...] = (128,),
                         activation: str = "relu") -> ActorCritic:
    """MinAtar's network shared by policy and value heads of one 128-unit layer each."""
    enc, dim = _minatar_encoder(tuple(obs_shape))
    return ActorCritic(encoder=enc, feat_dim=dim, hidden=tuple(hidden), num_actions=num_actions,
                       continuous=continuous, activation=activation)


@MODELS.register("q_table")
def q_table(*, num_states: int, num_actions: int) -> QTable:
    """A float64 table of action values for finite MDPs (FrozenLake, Taxi)."""
    return QTable(num_states=num_states, num_actions=num_actions)
