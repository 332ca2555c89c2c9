# SPDX-License-Identifier: GPL-2.0
# bench/mpi/run's global checkpoint, called by LAMMPS (bench/mpi/lj.lmp)
# on every rank after each write_restart, and timed on rank 0 from a
# barrier (every rank ready) until every rank has the outcome:
#
#   blobcr  blobcr_mpi_checkpoint() (libblobcr-mpi-openmpi.so): files
#           synced, one checkpoint per VM through its proxy (freeze, cut,
#           thaw, upload), the group published;
#   qcow2   the paper's qcow2-disk: each VM freezes its file system, copies
#           its qcow2 overlay whole to the host (bench/paper/xfer.sh, which
#           fsyncs it) and thaws; a barrier.
#
# Environment: BENCH_MODE (blobcr|qcow2), BENCH_RES (a file: "res" lines
# are appended), BLOBCR_MPI_LIB and BLOBCR_CHANNEL (blobcr), BENCH_OVERLAY,
# BENCH_NAME and BENCH_XFER (qcow2: the overlay, its name on the host,
# HOST:PORT of the receiver).
import ctypes
import os
import subprocess
import time

_lmp = ctypes.CDLL("liblammps.so.0")
_lmp.lammps_get_mpi_comm.argtypes = [ctypes.c_void_p]
_lmp.lammps_get_thermo.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_lmp.lammps_get_thermo.restype = ctypes.c_double
_lmp.lammps_extract_setting.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
ctypes.pythonapi.PyCapsule_GetPointer.restype = ctypes.c_void_p
ctypes.pythonapi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_ompi = ctypes.CDLL("libmpi.so.40")
_ompi.MPI_Comm_f2c.argtypes = [ctypes.c_int]
_ompi.MPI_Comm_f2c.restype = ctypes.c_void_p
_ompi.MPI_Barrier.argtypes = [ctypes.c_void_p]
MODE = os.environ["BENCH_MODE"]
if MODE == "blobcr":
    _bc = ctypes.CDLL(os.environ["BLOBCR_MPI_LIB"])
    _bc.blobcr_mpi_error.restype = ctypes.c_char_p


def _res(key, value):
    with open(os.environ["BENCH_RES"], "a") as f:
        f.write("res %s=%s\n" % (key, value))


def _qcow2_copy():
    """Freeze, copy the overlay whole to the host, thaw: this VM's part."""
    host, port = os.environ["BENCH_XFER"].rsplit(":", 1)
    mnt = os.getcwd()
    t0 = time.monotonic()
    subprocess.run(["fsfreeze", "-f", mnt], check=True)
    try:
        put = subprocess.run(
            ["sh", "-c", '{ echo "PUT $1"; cat "$2"; } | socat -b 262144 -t 600 - "TCP:$3:$4"',
             "put", os.environ["BENCH_NAME"], os.environ["BENCH_OVERLAY"], host, port],
            check=True, capture_output=True, text=True)
    finally:
        subprocess.run(["fsfreeze", "-u", mnt], check=True)
    answer = put.stdout.split()
    if len(answer) != 2 or answer[0] != "OK":
        raise RuntimeError("qcow2 copy refused: %r" % put.stdout)
    return int(answer[1]), (time.monotonic() - t0) * 1000


def checkpoint(self):
    lmp = ctypes.pythonapi.PyCapsule_GetPointer(self, None)
    fcomm = _lmp.lammps_get_mpi_comm(lmp)
    comm = _ompi.MPI_Comm_f2c(fcomm)
    rank = _lmp.lammps_extract_setting(lmp, b"world_rank")
    step = int(_lmp.lammps_get_thermo(lmp, b"step"))
    _res("dump_%d_rank%d_bytes" % (step, rank),
         os.path.getsize("restart.%d.%d" % (step, rank)))
    _ompi.MPI_Barrier(comm)
    t0 = time.monotonic()
    if MODE == "blobcr":
        group = ctypes.create_string_buffer(128)
        if _bc.blobcr_mpi_checkpoint_f(fcomm, b".", b"step-%d" % step, group):
            # Every rank has the same outcome: the run goes on, this
            # checkpoint counts as failed (the table says so).
            if rank == 0:
                _res("ckpt_%d_failed" % step, _bc.blobcr_mpi_error().decode().replace(" ", "_"))
                print("bench: step %d not checkpointed: %s" % (step, _bc.blobcr_mpi_error().decode()),
                      flush=True)
            return
        what = group.value.decode()
    else:
        size, frozen = _qcow2_copy()
        _res("copy_%d_rank%d_bytes" % (step, rank), size)
        _res("copy_%d_rank%d_frozen_ms" % (step, rank), "%.0f" % frozen)
        _ompi.MPI_Barrier(comm)
        what = "copied"
    if rank == 0:
        ms = (time.monotonic() - t0) * 1000
        _res("ckpt_%d_ms" % step, "%.0f" % ms)
        print("bench: step %d checkpointed (%s) in %.0f ms" % (step, what, ms), flush=True)
