//! Open connections of one shard by the role their authentication gave them
//! (`none` until then, and again after a revocation), for `/metrics`
//! (`dm_tcp_connections`). It sits in the service layer, beside the roles it
//! counts, so that the shard can own it and any front end can fill it.

use crate::metrics::Sample;
use crate::service::auth::Role;
use std::cell::Cell;
use std::rc::Rc;

/// The roles a connection can be in, in `/metrics` order.
const ROLES: [Option<Role>; 4] = [
    None,
    Some(Role::Player),
    Some(Role::GameServer),
    Some(Role::Admin),
];

fn index(role: Option<Role>) -> usize {
    match role {
        None => 0,
        Some(Role::Player) => 1,
        Some(Role::GameServer) => 2,
        Some(Role::Admin) => 3,
    }
}

/// One shard's counts (only its executor touches them).
#[derive(Default)]
pub struct TcpRoles {
    open: [Cell<u64>; 4],
}

impl TcpRoles {
    /// This shard's `dm_tcp_connections` samples.
    pub fn samples(&self, shard: usize) -> Vec<Sample> {
        ROLES
            .iter()
            .map(|role| Sample {
                name: "dm_tcp_connections",
                labels: format!(
                    "shard=\"{shard}\",role=\"{}\"",
                    role.map_or("none", |r| r.as_str())
                ),
                value: self.open[index(*role)].get() as f64,
            })
            .collect()
    }
}

/// One connection's place in the counts: counted as `none` when made, moved
/// by [`RoleSlot::set`], uncounted when dropped.
pub struct RoleSlot {
    roles: Rc<TcpRoles>,
    role: Option<Role>,
}

impl RoleSlot {
    /// A new unauthenticated connection.
    pub fn new(roles: Rc<TcpRoles>) -> RoleSlot {
        let slot = &roles.open[index(None)];
        slot.set(slot.get() + 1);
        RoleSlot { roles, role: None }
    }

    /// The connection now acts as `role`.
    pub fn set(&mut self, role: Option<Role>) {
        if role == self.role {
            return;
        }
        let old = &self.roles.open[index(self.role)];
        old.set(old.get().saturating_sub(1));
        let new = &self.roles.open[index(role)];
        new.set(new.get() + 1);
        self.role = role;
    }
}

impl Drop for RoleSlot {
    fn drop(&mut self) {
        let slot = &self.roles.open[index(self.role)];
        slot.set(slot.get().saturating_sub(1));
    }
}
