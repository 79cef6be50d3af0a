#pragma once
// Umbrella header for CUDA translation units (.cu, compiled by nvcc, linked to trm::cuda): the whole
// library (trm/trm.hpp) plus the CUDA backend trm::cuda, device memory and host <-> device copies
// (trm/backend/cuda.hpp).
#include "trm.hpp"
#include "backend/cuda.hpp"
