"""Sine waves predicted by two LSTM cells (pytorch/examples' ``time_sequence_prediction``).

The model, two ``nn.LSTMCell``s and a linear layer in float64, reads each wave one value at a
time and predicts the next, then runs on by itself for ``--future`` steps. Training is the
example's: ``nn.MSELoss`` and ``optim.LBFGS(lr=0.8)`` with a closure, the whole set at once.
The waves are made as the example's ``generate_sine_wave.py`` makes them (in memory, not
written to ``traindata.pt``); ``--length`` and ``--num-seqs`` make them shorter and fewer than
its 1000 x 100, and no plots are drawn. Every evaluation of the closure prints its loss
(``loss_NNN``).

    .venv/bin/python examples/torch/time_sequence_prediction.py --steps 3
"""

import argparse

import numpy as np

import chainrule.torch as torch
import chainrule.torch.nn as nn
import chainrule.torch.optim as optim


class Sequence(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1 = nn.LSTMCell(1, 51)
        self.lstm2 = nn.LSTMCell(51, 51)
        self.linear = nn.Linear(51, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = torch.zeros(input.size(0), 51, dtype=torch.double)
        c_t = torch.zeros(input.size(0), 51, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), 51, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), 51, dtype=torch.double)

        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for _ in range(future):  # if we should predict the future
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        outputs = torch.cat(outputs, dim=1)
        return outputs


def generate_sine_wave(T=20, L=1000, N=100):
    """generate_sine_wave.py: N waves of L values, each starting at a random phase."""
    np.random.seed(2)
    x = np.empty((N, L), "int64")
    x[:] = np.array(range(L)) + np.random.randint(-4 * T, 4 * T, N).reshape(N, 1)
    return np.sin(x / 1.0 / T).astype("float64")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=15, help="steps to run")
    parser.add_argument("--length", type=int, default=1000, help="values in each wave")
    parser.add_argument("--num-seqs", type=int, default=100, help="waves (3 of them for test)")
    parser.add_argument("--future", type=int, default=1000, help="values predicted after each")
    parser.add_argument("--max-iter", type=int, default=20, help="LBFGS iterations a step")
    parser.add_argument("--save-init", type=str, default="", help="write the initial state_dict")
    parser.add_argument("--init-weights", type=str, default="", help="start from this state_dict")
    opt = parser.parse_args()
    # set random seed to 0
    np.random.seed(0)
    torch.manual_seed(0)
    # make the data and the training set
    data = generate_sine_wave(L=opt.length, N=opt.num_seqs)
    input = torch.from_numpy(data[3:, :-1])
    target = torch.from_numpy(data[3:, 1:])
    test_input = torch.from_numpy(data[:3, :-1])
    test_target = torch.from_numpy(data[:3, 1:])
    # build the model
    seq = Sequence()
    seq.double()
    if opt.save_init:
        torch.save(seq.state_dict(), opt.save_init)
    if opt.init_weights:
        seq.load_state_dict(torch.load(opt.init_weights))
    criterion = nn.MSELoss()
    # use LBFGS as optimizer since we can load the whole data to train
    optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=opt.max_iter)
    losses = []
    # begin to train
    for i in range(opt.steps):
        print("STEP: ", i)

        def closure():
            optimizer.zero_grad()
            out = seq(input)
            loss = criterion(out, target)
            print("loss:", loss.item())
            losses.append(loss.item())
            loss.backward()
            return loss

        step_loss = optimizer.step(closure)
        # begin to predict, no need to track gradient here
        with torch.no_grad():
            future = opt.future
            pred = seq(test_input, future=future)
            loss = criterion(pred[:, :-future], test_target)
            print("test loss:", loss.item())
            y = pred.detach().numpy()

    for k, value in enumerate(losses):
        print(f"loss_{k:03d} {value}")
    print(f"first_loss {losses[0]}")
    print(f"last_loss {losses[-1]}")
    print(f"closure_calls {len(losses)}")
    print(f"step_loss {step_loss.item()}")  # LBFGS.step returns the closure's first loss
    print(f"test_loss {loss.item()}")
    print(f"prediction_shape {'x'.join(map(str, y.shape))}")
    print(f"prediction_dtype {y.dtype}")
