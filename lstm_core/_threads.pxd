# The process-wide settings of the kernels' plans (see _threads.pyx).
from lstm_core._kernels cimport lstm_settings

cdef lstm_settings *kernel_settings() noexcept nogil
