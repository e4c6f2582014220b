/* cflow.h — the CFlow runtime: bounded MPMC rings, an eventcount parker, pinned worker pools. */
#ifndef CFLOW_H
#define CFLOW_H
#include "flow_base.h"
#include "flow_parker.h"
#include "flow_ring.h"
#include "flow_config.h"
#include "flow_pool.h"
#endif
