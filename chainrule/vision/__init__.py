"""``chainrule.vision``: torchvision's names for images, reading local files only.

``transforms`` (``Compose``, ``ToTensor``, ``Normalize``, ``Resize``, ``CenterCrop``,
``RandomCrop``, ``RandomResizedCrop``, ``RandomHorizontalFlip``, ``RandomRotation``,
``ColorJitter``, ``Grayscale``, ...) and ``datasets`` (``ImageFolder``, ``MNIST``,
``FashionMNIST`` from the standard idx files, ``CIFAR10``/``CIFAR100`` from their binary
files) with torchvision's signatures, so a PyTorch image program runs with only its imports
changed::

    from chainrule.torch.vision import datasets, transforms   # torchvision's spelling

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = datasets.MNIST("data", train=True, transform=tf)

Images are PIL images until ``ToTensor`` makes them float32 arrays (C, H, W) in [0, 1], as in
torchvision; random transforms make torchvision's draws from PyTorch's default generator
(``chainrule.core.torch_generator``), which ``chainrule.torch.manual_seed`` and
``mx.random.seed`` set. Nothing is downloaded:
``download=True`` says where to put the files. Pillow is needed (``pip install
'chainrule[data]'``).
"""

from . import datasets, transforms

__all__ = ["datasets", "transforms"]
