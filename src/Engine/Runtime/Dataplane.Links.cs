using ZonLb.Engine.Configuration;
using ZonLb.Native.Bpf;
using ZonLb.Native.Ethtool;
using ZonLb.Native.Netlink;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Runtime;

/// <summary>
/// Interfaces that change under a running data path: one going down or up is reported; one deleted has its
/// sockets closed (their frames taken back into the pool) while the others keep forwarding; when an interface
/// of that name exists again (a new ifindex), sockets are bound to it again and the XDP program re-attached.
/// </summary>
internal sealed partial class Dataplane
{
    private void WatchLinks()
    {
        using var nl = new RtNetlink();
        var complained = new Dictionary<string, long>();
        Dictionary<int, (int ParentIfIndex, ushort Vlan)>? vlans = null;
        while (!_stop)
        {
            for (int i = 0; i < 10 && !_stop; i++)
                Thread.Sleep(50);
            if (_stop)
                return;
            foreach (var port in _ports)
            {
                try
                {
                    var link = nl.GetLink(port.Name);
                    if (link == null)
                    {
                        if (!port.Missing)
                        {
                            _log($"warning: interface {port.Name} was deleted; its sockets are closed, the other interfaces keep forwarding; waiting for it to come back");
                            DropPort(port);
                        }
                        continue;
                    }
                    if (port.Missing || link.Index != port.IfIndex)
                    {
                        if (!port.Missing)
                            DropPort(port);
                        Reattach(port, link);
                        complained.Remove(port.Name);
                        continue;
                    }
                    if (!link.IsUp && !port.Down)
                        _log($"warning: interface {port.Name} is down");
                    else if (link.IsUp && port.Down)
                        _log($"interface {port.Name} is up again");
                    port.Down = !link.IsUp;
                    if (link.Mtu != port.Mtu)
                    {
                        _log($"interface {port.Name}: MTU {port.Mtu} -> {link.Mtu}");
                        port.Mtu = link.Mtu;
                        int ifIndex = port.IfIndex, mtu = link.Mtu;
                        OnEveryWorker(() => new WorkerAction<int>(w => { w.Processor.SetMtu(ifIndex, mtu); return 0; })).GetAwaiter().GetResult();
                    }
                }
                catch (Exception e) when (e is Native.Interop.NativeException or InvalidOperationException)
                {
                    long now = Environment.TickCount64;
                    if (!complained.TryGetValue(port.Name, out long last) || now - last > 10_000)
                    {
                        _log($"warning: interface {port.Name}: {e.Message}; trying again");
                        complained[port.Name] = now;
                    }
                }
            }
            // VLAN interfaces created, deleted or re-created on an attached port
            if (_ports.Any(p => p.Vlans.Count > 0))
            {
                try
                {
                    var now = VlanInterfaces(nl);
                    if (vlans == null || !now.OrderBy(kv => kv.Key).SequenceEqual(vlans.OrderBy(kv => kv.Key)))
                    {
                        if (vlans != null)
                            _log($"VLAN interfaces now: {(now.Count == 0 ? "none" : string.Join(", ", now.Select(kv => $"ifindex {kv.Key} = VLAN {kv.Value.Vlan} on ifindex {kv.Value.ParentIfIndex}")))}");
                        vlans = now;
                        OnEveryWorker(() => new WorkerAction<int>(w => { w.Processor.SetVlans(now); return 0; })).GetAwaiter().GetResult();
                    }
                }
                catch (Native.Interop.NativeException)
                {
                    // tried again on the next round
                }
            }
        }
    }

    /// <summary>The VLAN interfaces stacked on attached ports whose VLAN ids the configuration lists:
    /// ifindex -> (parent ifindex, VLAN id).</summary>
    private Dictionary<int, (int ParentIfIndex, ushort Vlan)> VlanInterfaces(RtNetlink nl)
    {
        var map = new Dictionary<int, (int, ushort)>();
        foreach (var link in nl.ListLinks())
        {
            var port = _ports.FirstOrDefault(p => p.IfIndex == link.ParentIndex && !p.Missing);
            if (link.VlanId > 0 && port != null && port.Vlans.Contains(link.VlanId))
                map[link.Index] = (port.IfIndex, (ushort)link.VlanId);
        }
        return map;
    }

    /// <summary>Closes a deleted interface's sockets and takes their frames back: the workers first let go of
    /// them (each rebinds between two batches), then nothing touches their rings.</summary>
    private void DropPort(Port port)
    {
        var sockets = port.Sockets.ToList();
        port.Sockets.Clear();
        port.Missing = true;
        _program!.Forget(port.IfIndex);
        _program.ClearInterfaceSlots(port.IfIndex);
        OnEveryWorker(() => new WorkerAction<int>(w => { w.Bind(_ports); return 0; })).GetAwaiter().GetResult();
        lock (_socketsLock)
        {
            foreach (var s in sockets)
            {
                var frames = new List<ulong>();
                frames.AddRange(s.Fill.PendingAddresses());
                frames.AddRange(s.Rx.PendingAddresses());
                frames.AddRange(s.Tx.PendingAddresses());
                frames.AddRange(s.Completion.PendingAddresses());
                _umem!.FreeBatch(frames.ToArray());
                _sockets.Remove(s);
                s.Dispose();
            }
            port.Umem?.Dispose(); // this interface's registration of the area; the others' stay
            port.Umem = null;
            _slots.Release(port.FirstSlot, sockets.Count); // the sockets left the XSKMAP as they closed
        }
    }

    /// <summary>Binds sockets to an interface that exists again and attaches the program to it.</summary>
    private void Reattach(Port port, LinkInfo link)
    {
        int queues = EthtoolChannels.GetRxQueueCount(port.Name);
        if (queues < _workers.Length)
            throw new InvalidOperationException($"it is back with {queues} RX queue(s), fewer than the {_workers.Length} worker(s)");
        var ic = _config.Interfaces.First(i => i.Name == port.Name);
        if (!_slots.TryTake(queues, out uint first))
            throw new InvalidOperationException($"its {queues} queue(s) do not fit the AF_XDP socket slots left ({_slots.Taken} of {XdpProgram.MaxSockets} taken)");
        var created = new List<XskSocket>();
        var umem = XskUmem.Register(_umem!, (uint)_config.Engine.RingSize, port.Name);
        try
        {
            for (int q = 0; q < queues; q++)
            {
                var socket = XskSocket.Create(umem, port.Name, link.Index, q, (uint)_config.Engine.RingSize, ic.XskMode, _config.Engine.MultiBuffer);
                created.Add(socket);
                if (_config.Engine.BusyPollMicroseconds > 0)
                    socket.EnableBusyPoll(_config.Engine.BusyPollMicroseconds, 64);
            }
        }
        catch
        {
            foreach (var c in created)
                c.Dispose();
            umem.Dispose();
            _slots.Release(first, queues);
            throw;
        }
        lock (_socketsLock)
        {
            foreach (var s in created)
            {
                _sockets.Add(s);
                port.Sockets.Add(s);
            }
            port.Umem = umem;
            port.IfIndex = link.Index;
            port.Mac = link.Mac.GetAddressBytes();
            port.Mtu = link.Mtu;
            port.FirstSlot = first;
            port.Missing = false;
        }
        // each worker takes its new sockets, fills them, and learns the interface's new identity
        var portList = _ports.Select(p => (p.IfIndex, p.Mac)).ToList();
        var mtus = _ports.Select(p => (p.IfIndex, p.Mtu)).ToList();
        OnEveryWorker(() => new WorkerAction<int>(w =>
        {
            w.Bind(_ports);
            w.Processor.UpdatePorts(portList);
            foreach (var (ifIndex, mtu) in mtus)
                w.Processor.SetMtu(ifIndex, mtu);
            w.FillAll();
            return 0;
        })).GetAwaiter().GetResult();
        var attachment = _program!.Attach(port.Name, link.Index, ic.XdpMode);
        port.AttachedMode = attachment.Mode;
        port.Attachment = attachment;
        lock (_socketsLock)
            SteerSockets(port);
        _log($"re-attached to {port.Name} (ifindex {link.Index}, {attachment}, {queues} queue(s))");
    }
}
