//! The instance allocator: where VMContexts, linear memories and tables
//! get their memory (see `pool.rs` for the reuse mechanism).

use super::pool::{Region, RegionPool};
use kiln_environ::Tunables;
use std::io;
use std::sync::{Arc, OnceLock};

/// Limits of the pooling allocator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolingLimits {
    /// Instances (VMContexts) that can exist at once.
    pub total_core_instances: u32,
    /// Linear memories that can exist at once.
    pub total_memories: u32,
    /// Tables that can exist at once.
    pub total_tables: u32,
    /// Most elements a table may have.
    pub table_elements: usize,
    /// Most bytes a VMContext may have.
    pub max_core_instance_size: usize,
    /// GC heaps (one per store using GC) that can exist at once.
    pub total_gc_heaps: u32,
    /// Async call stacks that can exist at once.
    pub total_stacks: u32,
}

impl Default for PoolingLimits {
    fn default() -> Self {
        PoolingLimits {
            total_core_instances: 1000,
            total_memories: 1000,
            total_tables: 1000,
            table_elements: 20_000,
            max_core_instance_size: 1 << 20,
            total_gc_heaps: 1000,
            total_stacks: 1000,
        }
    }
}

/// Regions released by the on-demand allocator kept for reuse, per size.
const ON_DEMAND_IDLE: usize = 16;

/// GC heap reservations released by the on-demand allocator kept for reuse.
const GC_HEAPS_IDLE: usize = 4;

/// Pools of the on-demand allocator, one per power-of-two size class,
/// made when first needed. Looking one up is an index and a load, with no
/// lock for concurrent instantiations to meet at.
struct SizeClasses {
    pools: Box<[OnceLock<Arc<RegionPool>>; usize::BITS as usize]>,
    make: fn(usize) -> RegionPool,
}

impl SizeClasses {
    fn new(make: fn(usize) -> RegionPool) -> Self {
        SizeClasses { pools: Box::new(std::array::from_fn(|_| OnceLock::new())), make }
    }

    /// The pool of regions of at least `bytes` (at least a page).
    fn get(&self, bytes: usize) -> io::Result<&Arc<RegionPool>> {
        let class =
            bytes.max(4096).checked_next_power_of_two().ok_or_else(|| io::Error::other("allocation size overflows"))?;
        let make = self.make;
        Ok(self.pools[class.trailing_zeros() as usize].get_or_init(|| Arc::new(make(class))))
    }
}

enum Pools {
    OnDemand { vmctx: SizeClasses, tables: SizeClasses },
    Pooling { limits: PoolingLimits, vmctx: Arc<RegionPool>, tables: Arc<RegionPool> },
}

/// An engine's instance allocator.
pub struct Allocator {
    pools: Pools,
    /// GC heap reservations: made when the first store uses GC (a fixed
    /// pool of `total_gc_heaps` slots under pooling, else on demand),
    /// reset and reused when stores drop their heaps.
    gc_heaps: OnceLock<io::Result<Arc<RegionPool>>>,
    /// Standard 32-bit memory slots (reservation + guard).
    memories: Arc<RegionPool>,
    memory_slot: usize,
    /// Stacks of async calls.
    stacks: Arc<super::fiber::StackPool>,
}

impl Allocator {
    /// The default allocator: regions are created on demand, and a few
    /// released ones of each size are kept for reuse.
    pub fn on_demand(tunables: &Tunables, stack_size: usize) -> Allocator {
        let memory_slot = memory_slot_size(tunables);
        Allocator {
            pools: Pools::OnDemand {
                vmctx: SizeClasses::new(|class| RegionPool::on_demand(class, true, ON_DEMAND_IDLE).without_reset()),
                tables: SizeClasses::new(|class| RegionPool::on_demand(class, true, ON_DEMAND_IDLE)),
            },
            memories: Arc::new(
                RegionPool::on_demand(memory_slot, false, ON_DEMAND_IDLE).with_huge_pages(tunables.memory_huge_pages),
            ),
            memory_slot,
            gc_heaps: OnceLock::new(),
            stacks: Arc::new(super::fiber::StackPool::on_demand(stack_size)),
        }
    }

    /// The pooling allocator: every slot reserved now.
    ///
    /// # Errors
    ///
    /// The reservations do not fit in the address space.
    pub fn pooling(tunables: &Tunables, limits: PoolingLimits, stack_size: usize) -> io::Result<Allocator> {
        let memory_slot = memory_slot_size(tunables);
        let memories = Arc::new(
            RegionPool::fixed(memory_slot, limits.total_memories as usize, false)?
                .with_huge_pages(tunables.memory_huge_pages),
        );
        let tables = Arc::new(RegionPool::fixed(limits.table_elements * 8, limits.total_tables as usize, true)?);
        let vmctx = Arc::new(
            RegionPool::fixed(limits.max_core_instance_size, limits.total_core_instances as usize, true)?
                .without_reset(),
        );
        let stacks = Arc::new(super::fiber::StackPool::pooling(stack_size, limits.total_stacks as usize));
        Ok(Allocator {
            stacks,
            pools: Pools::Pooling { limits, vmctx, tables },
            memories,
            memory_slot,
            gc_heaps: OnceLock::new(),
        })
    }

    /// The pool of async call stacks.
    pub fn stacks(&self) -> &Arc<super::fiber::StackPool> {
        &self.stacks
    }

    /// A region for a store's GC heap (`gc_heap::RESERVATION` bytes, all
    /// inaccessible or as its last user left it; reset to zero), and the
    /// pool to give it back to.
    ///
    /// # Errors
    ///
    /// All pooling slots are in use, or the OS refused the reservation.
    pub fn gc_heap(&self) -> io::Result<(Region, Arc<RegionPool>)> {
        let pool = self.gc_heaps.get_or_init(|| {
            let size = super::gc_heap::RESERVATION;
            Ok(Arc::new(match &self.pools {
                Pools::OnDemand { .. } => RegionPool::on_demand(size, false, GC_HEAPS_IDLE),
                Pools::Pooling { limits, .. } => RegionPool::fixed(size, limits.total_gc_heaps as usize, false)?,
            }))
        });
        let pool = match pool {
            Ok(p) => p.clone(),
            Err(e) => return Err(io::Error::new(e.kind(), format!("cannot reserve the pool of GC heaps: {e}"))),
        };
        Ok((pool.acquire()?, pool))
    }

    /// A region for a VMContext of `bytes`.
    ///
    /// # Errors
    ///
    /// Pool exhausted, VMContext too large for a pooling slot, or OS failure.
    pub fn vmctx(&self, bytes: usize) -> io::Result<(Region, Arc<RegionPool>)> {
        let pool = match &self.pools {
            Pools::OnDemand { vmctx, .. } => vmctx.get(bytes)?.clone(),
            Pools::Pooling { limits, vmctx, .. } => {
                if bytes > limits.max_core_instance_size {
                    return Err(io::Error::other(format!(
                        "instance needs {bytes} bytes of VMContext, more than the pooling limit of {}",
                        limits.max_core_instance_size
                    )));
                }
                vmctx.clone()
            }
        };
        Ok((pool.acquire()?, pool))
    }

    /// A region for a table that may reach `max_elements`.
    ///
    /// # Errors
    ///
    /// Pool exhausted, or the table's minimum exceeds the pooling limit.
    pub fn table(&self, min_elements: usize, max_elements: usize) -> io::Result<(Region, Arc<RegionPool>)> {
        let pool = match &self.pools {
            Pools::OnDemand { tables, .. } => tables.get(max_elements.saturating_mul(8))?.clone(),
            Pools::Pooling { limits, tables, .. } => {
                if min_elements > limits.table_elements {
                    return Err(io::Error::other(format!(
                        "table of {min_elements} elements exceeds the pooling limit of {}",
                        limits.table_elements
                    )));
                }
                tables.clone()
            }
        };
        Ok((pool.acquire()?, pool))
    }

    /// Most elements any table may have under this allocator: the pooling
    /// limit (a slot, rounded up to whole pages, may hold more), or no
    /// limit of its own.
    pub fn max_table_elements(&self) -> usize {
        match &self.pools {
            Pools::OnDemand { .. } => usize::MAX,
            Pools::Pooling { limits, .. } => limits.table_elements,
        }
    }

    /// A region for a standard (32-bit) linear memory, if `reservation`
    /// bytes (reservation plus guard) is the standard slot size.
    ///
    /// # Errors
    ///
    /// Pool exhausted or OS failure.
    pub fn memory(&self, reservation: usize) -> Option<io::Result<(Region, Arc<RegionPool>)>> {
        (reservation == self.memory_slot).then(|| self.memories.acquire().map(|r| (r, self.memories.clone())))
    }
}

fn memory_slot_size(t: &Tunables) -> usize {
    usize::try_from(t.memory_reservation.saturating_add(t.memory_guard_size)).unwrap_or(usize::MAX)
}
