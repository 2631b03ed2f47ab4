"""Build pyrobust and its compiled kernels against the torch that is already installed.

Install with ``pip install --no-build-isolation -e .``: an isolated build environment would fetch another
torch, and an extension built against one torch does not load in another.

The extension ``pyrobust._C`` always holds the op schemas, their autograd and the CPU dispatch; the CPU
kernels themselves are built once per instruction set into libraries of their own, ``pyrobust._cpu_default``
(baseline x86-64, and the only one on other architectures), ``pyrobust._cpu_avx2`` and ``pyrobust._cpu_avx512``,
of which ``_C`` loads the best that the CPU supports (or the one ``PYROBUST_CPU_CAPABILITY`` names): a build
runs on any x86-64 machine, as PyTorch's own (kernels/cpu/kernels.cpp says why libraries and not per-file
flags). Where torch is a CUDA build and nvcc is found, the CUDA kernels (``kernels/cuda/*.cu``) and their thin
binding are compiled into ``_C`` as well; otherwise they are left out and ``pyrobust.backend("cuda")`` says
why.
"""

import glob
import os
import platform
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


#: The CPU kernels' builds and their flags (those of ATen's CPU_CAPABILITY builds); compiled with them here,
#: chosen at run time by kernels/cpu/dispatch.cpp.
CPU_CAPABILITIES = {
    "default": [],
    "avx2": ["-mavx2", "-mfma"],
    "avx512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma"],
}
DL = ["dl"] if sys.platform.startswith("linux") else []  # dlopen: in libc only from glibc 2.34


def cpu_capabilities() -> dict[str, list[str]]:
    """The builds for this machine's architecture: all of them on x86-64, ``default`` alone elsewhere."""
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        return CPU_CAPABILITIES
    return {"default": []}


def _extensions():
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, CppExtension, CUDAExtension
    except ImportError as err:  # pragma: no cover - only hit by a misconfigured install
        raise SystemExit(
            "pyrobust compiles its kernels against the installed torch: install torch first, then "
            "`pip install --no-build-isolation -e .`"
        ) from err

    def rel(pattern):
        return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))

    sources = rel("kernels/ops.cpp") + rel("kernels/cpu/dispatch.cpp")
    cxx = ["-O3", "-std=c++20"]  # torch >= 2.10 headers need C++20
    kwargs = dict(
        include_dirs=[os.path.join(ROOT, "kernels", "include")],
        py_limited_api=False,
    )
    with_cuda = (
        torch.version.cuda is not None
        and CUDA_HOME is not None
        and os.environ.get("PYROBUST_NO_CUDA", "0") != "1"
    )
    if with_cuda:
        sources += rel("kernels/cuda/*.cu") + rel("kernels/cuda/*.cpp")
        nvcc = ["-O3", "-std=c++20", "--use_fast_math", "-lineinfo"]
        arch = os.environ.get("TORCH_CUDA_ARCH_LIST")
        if arch is None:
            nvcc += ["-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_90,code=sm_90"]
        main = CUDAExtension(
            name="pyrobust._C",
            sources=sources,
            extra_compile_args={"cxx": cxx + ["-DPYROBUST_WITH_CUDA"], "nvcc": nvcc},
            libraries=DL,
            **kwargs,
        )
    else:
        main = CppExtension(name="pyrobust._C", sources=sources, extra_compile_args={"cxx": cxx}, libraries=DL,
                            **kwargs)
    # One library per instruction set. at::parallel_for compiles to OpenMP pragmas in the header: without
    # -fopenmp it silently runs serial. Hidden symbols: each build keeps its own copies of inline functions.
    hidden = ["-fvisibility=hidden", "-fvisibility-inlines-hidden"]
    kernels = [
        CppExtension(
            name=f"pyrobust._cpu_{capability}",
            sources=rel(f"kernels/cpu/capability/{capability}.cpp"),
            extra_compile_args={"cxx": [*cxx, "-fopenmp", *hidden, *flags]},
            extra_link_args=["-fopenmp"],
            **kwargs,
        )
        for capability, flags in cpu_capabilities().items()
    ]
    return [main, *kernels]


def _version():
    """``__version__`` of pyrobust/_version.py, read without importing the package (one source of truth)."""
    namespace = {}
    exec(open(os.path.join(ROOT, "pyrobust", "_version.py"), encoding="utf-8").read(), namespace)
    return namespace["__version__"]


WORKFLOW = [
    "snakemake>=9.0",
    "snakemake-executor-plugin-cluster-generic",
    "snakemake-executor-plugin-slurm",
    "jsonschema",
]
TEST = ["pytest>=8", "expecttest", "hypothesis", "cleanlab>=2.6", "snakefmt"]


def _cmdclass():
    from torch.utils.cpp_extension import BuildExtension

    return {"build_ext": BuildExtension.with_options(use_ninja=True)}


setup(
    name="pyrobust",
    version=_version(),
    description="Loss correction for deep learning with noisy labels (Patrini et al., CVPR 2017), with fused "
    "C++/CUDA kernels",
    long_description=open(os.path.join(ROOT, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["pyrobust", "pyrobust.*"]),
    ext_modules=_extensions(),
    cmdclass=_cmdclass(),
    # torch is deliberately unpinned: the extension is built against whichever torch is installed.
    install_requires=[
        "torch>=2.4",
        "numpy>=1.24",
        "tqdm>=4.60",
        "pandas>=2.0",
        "scipy>=1.10",
        "matplotlib>=3.7",
        "seaborn>=0.13",
        "mlxtend>=0.23",
        "pyyaml>=6.0",
        "pillow>=9.1",  # image folders, Clothing1M (pyrobust.data.images)
    ],
    extras_require={"workflow": WORKFLOW, "test": WORKFLOW + TEST},
    entry_points={"console_scripts": ["pyrobust = pyrobust.cli:main"]},
    zip_safe=False,
)
