# SPDX-License-Identifier: GPL-2.0
# Global checkpoints of a LAMMPS run through blobcr-mpi.h, from LAMMPS's
# own python command (Debian's lammps has the PYTHON package), with
# ctypes: no LAMMPS rebuild.  The communicator is LAMMPS's own, as a
# Fortran handle (lammps_get_mpi_comm()), which blobcr_mpi_*_f() take.
#
#   python blobcr_restart input 1 SELF return v_from format pi file blobcr.py
#   python blobcr_checkpoint input 1 SELF format p file blobcr.py
#
# The job directory is the current one, on each VM's checkpointed disk;
# $BLOBCR_MPI_LIB names libblobcr-mpi-openmpi.so.
import ctypes
import os

_lmp = ctypes.CDLL("liblammps.so.0")
_lmp.lammps_get_mpi_comm.argtypes = [ctypes.c_void_p]
_lmp.lammps_get_thermo.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_lmp.lammps_get_thermo.restype = ctypes.c_double
_lmp.lammps_extract_setting.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
ctypes.pythonapi.PyCapsule_GetPointer.restype = ctypes.c_void_p
ctypes.pythonapi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_mpi = ctypes.CDLL(os.environ["BLOBCR_MPI_LIB"])
_mpi.blobcr_mpi_error.restype = ctypes.c_char_p
STEP_FILE = "checkpoint.step"
ATTEMPTS = 3  # a failed checkpoint (an upload can fail) is tried again


def _handle(self):
    """The LAMMPS instance SELF hands over (a PyCapsule) as a pointer."""
    return ctypes.pythonapi.PyCapsule_GetPointer(self, None)


def _say(lmp, text):
    """On rank 0's stdout (LAMMPS's input reader is busy while a python
    variable is evaluated: no print command from here)."""
    if _lmp.lammps_extract_setting(lmp, b"world_rank") == 0:
        print("blobcr: " + text, flush=True)


def blobcr_restart(self):
    """The step of the global checkpoint this run restarts from, or 0."""
    lmp = _handle(self)
    group = ctypes.create_string_buffer(128)
    r = _mpi.blobcr_mpi_restart_test_f(_lmp.lammps_get_mpi_comm(lmp), b".", group)
    if r < 0:
        raise RuntimeError(_mpi.blobcr_mpi_error().decode())
    if r == 0:
        return 0
    with open(STEP_FILE) as f:
        step = int(f.read())
    _say(lmp, "restarted from %s at step %d" % (group.value.decode(), step))
    return step


def blobcr_checkpoint(self):
    """After write_restart: the step into STEP_FILE, then the global checkpoint."""
    lmp = _handle(self)
    step = int(_lmp.lammps_get_thermo(lmp, b"step"))
    # Ranks sharing a VM share the directory: each renames its own copy.
    tmp = "%s.%d" % (STEP_FILE, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % step)
    os.rename(tmp, STEP_FILE)
    group = ctypes.create_string_buffer(128)
    # Every rank gets the same outcome, so all retry together.
    for _ in range(ATTEMPTS):
        r = _mpi.blobcr_mpi_checkpoint_f(_lmp.lammps_get_mpi_comm(lmp), b".",
                                         b"step-%d" % step, group)
        if not r:
            _say(lmp, "step %d checkpointed as %s" % (step, group.value.decode()))
            return
        _say(lmp, "step %d not checkpointed: %s" % (step, _mpi.blobcr_mpi_error().decode()))
