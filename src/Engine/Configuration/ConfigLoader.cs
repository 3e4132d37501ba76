using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Tomlyn;
using Tomlyn.Model;
using ZonLb.Engine.Packets;
using ZonLb.Native.Bpf;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Configuration;

/// <summary>
/// Reads the TOML configuration (see README "Configuration") and validates it completely before anything is
/// attached. Every error names the file, the key path (service[0].backend[1].port) and the offending value.
/// </summary>
public static class ConfigLoader
{
    private static readonly string[] TopKeys = ConfigOptions.KeysOf("");
    private static readonly string[] InterfaceKeys = ConfigOptions.KeysOf("interface");
    private static readonly string[] ServiceKeys = ConfigOptions.KeysOf("service");
    private static readonly string[] HealthKeys = ConfigOptions.KeysOf("service.health");
    private static readonly string[] BackendKeys = ConfigOptions.KeysOf("service.backend");
    private static readonly string[] EngineKeys = ConfigOptions.KeysOf("engine");

    /// <summary>Reads and checks a TOML configuration file.</summary>
    /// <exception cref="ConfigException">The file cannot be read or is not valid; the message names the file, key and value.</exception>
    public static LoadBalancerConfig LoadFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot read: {e.Message}");
        }
        return Parse(text, path);
    }

    /// <summary>Parses and checks TOML text; <paramref name="source"/> names it in error messages.</summary>
    /// <exception cref="ConfigException">The text is not a valid configuration.</exception>
    public static LoadBalancerConfig Parse(string text, string source)
    {
        TomlTable root;
        try
        {
            root = TomlSerializer.Deserialize<TomlTable>(text, (TomlSerializerOptions?)null)
                   ?? throw new ConfigException($"{source}: empty document");
        }
        catch (TomlException e)
        {
            string where = e.Line is int l ? $":{l}" + (e.Column is int c ? $":{c}" : "") : "";
            throw new ConfigException($"{source}{where}: TOML syntax error: {FirstLine(e.Message)}");
        }
        var r = new Reader(source);
        var config = new LoadBalancerConfig { Source = source };
        r.CheckKeys(root, "", TopKeys);

        var interfaces = r.TableArray(root, "interface", "");
        if (interfaces.Count == 0)
            throw new ConfigException($"{source}: no [[interface]]: name at least the interface where clients reach the services");
        for (int i = 0; i < interfaces.Count; i++)
        {
            string at = $"interface[{i}]";
            var t = interfaces[i];
            r.CheckKeys(t, at, InterfaceKeys);
            string name = r.RequiredString(t, at, "name");
            if (name.Length is 0 or > 15 || name.Contains('/') || name.Any(char.IsWhiteSpace))
                throw r.Error(at, "name", name, "not a valid interface name (1 to 15 characters, no '/' or spaces)");
            if (config.Interfaces.Any(x => x.Name == name))
                throw r.Error(at, "name", name, "interface listed twice");
            config.Interfaces.Add(new InterfaceConfig
            {
                Name = name,
                XdpMode = r.OptionalEnum(t, at, "xdp_mode", XdpAttachMode.Auto,
                    ("auto", XdpAttachMode.Auto), ("native", XdpAttachMode.Native), ("generic", XdpAttachMode.Generic)),
                XskMode = r.OptionalEnum(t, at, "xsk_mode", XskBindMode.Auto,
                    ("auto", XskBindMode.Auto), ("copy", XskBindMode.Copy), ("zerocopy", XskBindMode.ZeroCopy)),
                Vlans = ReadVlans(r, t, at),
            });
        }

        var services = r.TableArray(root, "service", "");
        if (services.Count == 0)
            throw new ConfigException($"{source}: no [[service]]: define at least one service");
        for (int i = 0; i < services.Count; i++)
            config.Services.Add(ReadService(r, services[i], $"service[{i}]", config));

        if (root.ContainsKey("control_socket"))
        {
            config.ControlSocket = r.RequiredString(root, "", "control_socket");
            if (!config.ControlSocket.StartsWith('/') || config.ControlSocket.Length > 107)
                throw r.Error("", "control_socket", config.ControlSocket, "must be an absolute path of at most 107 characters");
        }
        if (root.ContainsKey("metrics_listen"))
        {
            string m = r.RequiredString(root, "", "metrics_listen");
            if (!System.Net.IPEndPoint.TryParse(m, out var ep) || ep.Port == 0)
                throw r.Error("", "metrics_listen", m, "must be address:port, e.g. \"127.0.0.1:9464\"");
            config.MetricsListen = m;
        }
        if (root.TryGetValue("engine", out var e2))
        {
            if (e2 is not TomlTable et)
                throw r.Error("", "engine", e2, "must be a table ([engine])");
            config.Engine = ReadEngine(r, et);
        }
        return config;
    }

    private static List<int> ReadVlans(Reader r, TomlTable t, string at)
    {
        if (!t.TryGetValue("vlans", out var v))
            return new List<int>();
        if (v is not TomlArray ids || ids.Any(x => x is not long))
            throw r.Error(at, "vlans", v is TomlArray ? "[...]" : v, "must be a list of 802.1Q VLAN ids, e.g. [100, 200]");
        var list = ids.Select(x => (long)x!).ToList();
        foreach (long id in list)
            if (id is < 1 or > 4094)
                throw r.Error(at, "vlans", $"[{string.Join(", ", list)}]", $"VLAN id {id} out of range 1-4094");
        if (list.Distinct().Count() != list.Count)
            throw r.Error(at, "vlans", $"[{string.Join(", ", list)}]", "a VLAN id is listed twice");
        return list.Select(x => (int)x).ToList();
    }

    private static ServiceConfig ReadService(Reader r, TomlTable t, string at, LoadBalancerConfig config)
    {
        r.CheckKeys(t, at, ServiceKeys);
        string name = r.RequiredString(t, at, "name");
        if (name.Length == 0)
            throw r.Error(at, "name", name, "must not be empty");
        if (config.Services.Any(s => s.Name == name))
            throw r.Error(at, "name", name, "duplicate service name");
        var vip = r.RequiredAddress(t, at, "vip");
        var proto = r.OptionalEnum(t, at, "protocol", (IpProtocol)0,
            ("tcp", IpProtocol.Tcp), ("udp", IpProtocol.Udp), ("icmp", IpProtocol.Icmp));
        if (proto == 0)
            throw r.Error(at, "protocol", null, "missing (tcp | udp | icmp)");
        ushort port = 0;
        if (proto == IpProtocol.Icmp)
        {
            if (t.ContainsKey("port"))
                throw r.Error(at, "port", t["port"], "ICMP echo services have no port");
        }
        else
        {
            port = r.RequiredPort(t, at, "port");
        }
        var dup = config.Services.FirstOrDefault(s => s.Vip.Equals(vip) && s.Protocol == proto && s.Port == port);
        if (dup != null)
            throw r.Error(at, "vip", vip, $"service '{dup.Name}' already serves {vip} {proto.ToString().ToLowerInvariant()} port {port}");
        var snat = ReadSnat(r, t, at, vip);
        HealthConfig? health = null;
        if (t.TryGetValue("health", out var hv))
        {
            if (hv is not TomlTable ht)
                throw r.Error(at, "health", hv, "must be a table, e.g. health = { kind = \"tcp\", interval = 2, timeout = 1, rise = 2, fall = 3 }");
            health = ReadHealth(r, ht, $"{at}.health", proto);
        }
        var mode = r.OptionalEnum(t, at, "mode", ForwardingMode.Nat, ("nat", ForwardingMode.Nat), ("dsr", ForwardingMode.Dsr));
        if (mode == ForwardingMode.Dsr && snat.Count > 0)
            throw r.Error(at, "snat", snat[0], "a dsr service translates no addresses: remove snat (the backend answers the client from the VIP)");
        var svc = new ServiceConfig { Name = name, Vip = vip, Protocol = proto, Port = port, Snat = snat, Health = health, Mode = mode };

        var backends = r.TableArray(t, "backend", at);
        if (backends.Count == 0)
            throw new ConfigException($"{r.Source}: {at} ('{name}'): no [[service.backend]]: a service needs at least one backend");
        for (int i = 0; i < backends.Count; i++)
        {
            string bat = $"{at}.backend[{i}]";
            var b = backends[i];
            r.CheckKeys(b, bat, BackendKeys);
            var addr = r.RequiredAddress(b, bat, "address", vip);
            ushort bport = 0;
            if (proto == IpProtocol.Icmp)
            {
                if (b.ContainsKey("port"))
                    throw r.Error(bat, "port", b["port"], "ICMP echo backends have no port");
            }
            else
            {
                bport = b.ContainsKey("port") ? r.RequiredPort(b, bat, "port") : port;
            }
            if (mode == ForwardingMode.Dsr && bport != port)
                throw r.Error(bat, "port", bport, $"a dsr service changes no ports: the backend serves the service's port {port}");
            if (svc.Backends.Any(x => x.Address.Equals(addr) && x.Port == bport))
                throw r.Error(bat, "address", addr, "backend listed twice");
            int weight = r.OptionalInt(b, bat, "weight", 1, 0, 1000);
            svc.Backends.Add(new BackendConfig { Address = addr, Port = bport, Weight = weight });
        }
        return svc;
    }

    /// <summary>snat = "address" or snat = ["a", "b"]: addresses of the VIP's family, each once.</summary>
    private static List<IPAddress> ReadSnat(Reader r, TomlTable t, string at, IPAddress vip)
    {
        if (!t.TryGetValue("snat", out var v))
            return new List<IPAddress>();
        if (v is string)
            return new List<IPAddress> { r.RequiredAddress(t, at, "snat", vip) };
        if (v is not TomlArray list || list.Count == 0 || list.Any(x => x is not string))
            throw r.Error(at, "snat", v is TomlArray ? "[...]" : v, "must be an address or a non-empty list of addresses, e.g. \"10.20.0.1\" or [\"10.20.0.1\", \"10.20.0.11\"]");
        var result = new List<IPAddress>();
        for (int i = 0; i < list.Count; i++)
        {
            var one = new TomlTable { ["snat"] = list[i]! };
            var a = r.RequiredAddress(one, at, "snat", vip);
            if (result.Contains(a))
                throw r.Error(at, "snat", a.ToString(), "listed twice");
            result.Add(a);
        }
        return result;
    }

    private static HealthConfig? ReadHealth(Reader r, TomlTable t, string at, IpProtocol proto)
    {
        r.CheckKeys(t, at, HealthKeys);
        var kind = r.OptionalEnum(t, at, "kind", HealthKind.Tcp, ("tcp", HealthKind.Tcp), ("http", HealthKind.Http), ("none", HealthKind.None));
        if (kind == HealthKind.None)
            return null;
        if (proto != IpProtocol.Tcp)
            throw r.Error(at, "kind", kind.ToString().ToLowerInvariant(), "tcp and http checks need a tcp service");
        var h = new HealthConfig
        {
            Kind = kind,
            IntervalSeconds = r.OptionalSeconds(t, at, "interval", 2),
            TimeoutSeconds = r.OptionalSeconds(t, at, "timeout", 1),
            Rise = r.OptionalInt(t, at, "rise", 2, 1, 100),
            Fall = r.OptionalInt(t, at, "fall", 3, 1, 100),
            Path = t.TryGetValue("path", out var p) ? p as string ?? throw r.Error(at, "path", p, "must be a string") : "/",
            Drain = !t.TryGetValue("drain", out var d) || (d as bool? ?? throw r.Error(at, "drain", d, "must be true or false")),
        };
        if (!h.Path.StartsWith('/'))
            throw r.Error(at, "path", h.Path, "must start with /");
        if (h.TimeoutSeconds > h.IntervalSeconds)
            throw r.Error(at, "timeout", h.TimeoutSeconds, $"must not exceed interval ({h.IntervalSeconds})");
        return h;
    }

    private static EngineOptions ReadEngine(Reader r, TomlTable t)
    {
        const string at = "engine";
        r.CheckKeys(t, at, EngineKeys);
        var o = new EngineOptions();
        foreach (var option in ConfigOptions.In("engine"))
        {
            if (option.SetInt != null)
                option.SetInt(o, r.OptionalInt(t, at, option.Key, option.DefaultFrom?.Invoke(o) ?? option.GetInt!(o), (int)option.Min!, (int)option.Max!));
            else if (option.SetBool != null && t.TryGetValue(option.Key, out var flag))
                option.SetBool(o, flag as bool? ?? throw r.Error(at, option.Key, flag, "must be true or false"));
        }
        o.TableFull = r.OptionalEnum(t, at, "table_full", TableFullPolicy.EarlyDrop, ("early-drop", TableFullPolicy.EarlyDrop), ("refuse", TableFullPolicy.Refuse));
        if (t.TryGetValue("cpu_affinity", out var ca))
        {
            if (ca is not TomlArray cpus || cpus.Any(x => x is not long))
                throw r.Error(at, "cpu_affinity", ca is TomlArray ? "[...]" : ca, "must be a list of CPU numbers, one per worker, e.g. [0, 1]");
            o.CpuAffinity = cpus.Select(x => (int)(long)x!).ToList();
            if (o.CpuAffinity.Count != o.Workers)
                throw r.Error(at, "cpu_affinity", $"[{string.Join(", ", o.CpuAffinity)}]", $"names {o.CpuAffinity.Count} CPU(s) for {o.Workers} worker(s)");
            // the CPUs this process may run on (taskset, cgroups), not how many there are: under `taskset -c 1` CPU 1 is the one
            var allowed = ZonLb.Native.Interop.CpuAffinity.AllowedCpus();
            foreach (int cpu in o.CpuAffinity)
                if (cpu < 0 || cpu >= 64 || !allowed.Contains(cpu))
                    throw r.Error(at, "cpu_affinity", $"[{string.Join(", ", o.CpuAffinity)}]",
                        $"CPU {cpu} is not one this process may run on (CPUs {string.Join(",", allowed)})");
        }
        if (o.FrameSize is not (2048 or 4096))
            throw r.Error(at, "frame_size", o.FrameSize, "must be 2048 or 4096");
        if ((o.RingSize & (o.RingSize - 1)) != 0)
            throw r.Error(at, "ring_size", o.RingSize, "must be a power of two");
        if (!Balancing.MaglevTable.IsPrime(o.MaglevTableSize))
            throw r.Error(at, "maglev_table_size", o.MaglevTableSize, "must be a prime number (for example 65537, 131071, 1000003)");
        if (o.NatPortMax < o.NatPortMin)
            throw r.Error(at, "nat_port_max", o.NatPortMax, $"must not be below nat_port_min ({o.NatPortMin})");
        if (t.TryGetValue("worker_fifo_priority", out var fifo))
        {
            if (fifo is "auto")
                o.WorkerFifoPriority = EngineOptions.AutoFifoPriority;
            else if (fifo is long n && n is >= 0 and <= 99)
                o.WorkerFifoPriority = (int)n;
            else
                throw r.Error(at, "worker_fifo_priority", fifo, "must be \"auto\" or a priority 0-99 (0: normal scheduling)");
        }
        if (o.WorkerFifoPriority > 0 && o.WorkerNice != 0)
            throw r.Error(at, "worker_fifo_priority", o.WorkerFifoPriority, $"excludes worker_nice ({o.WorkerNice}): a SCHED_FIFO thread has no nice value");
        if (o.WorkerFifoPriority > 0 && o.BusyPollMicroseconds != 0)
            throw r.Error(at, "worker_fifo_priority", o.WorkerFifoPriority, $"excludes busy_poll_usecs ({o.BusyPollMicroseconds}): a busy-polling worker never sleeps, and a real-time one that never sleeps starves its CPU");
        return o;
    }

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();

    /// <summary>Typed access to TOML values with errors that say where.</summary>
    private sealed class Reader
    {
        public Reader(string source) => Source = source;

        public string Source { get; }

        public ConfigException Error(string at, string key, object? value, string problem)
        {
            string path = at.Length == 0 ? key : $"{at}.{key}";
            string shown = value switch
            {
                null => "",
                string s => $" = \"{s}\"",
                IFormattable f => $" = {f.ToString(null, CultureInfo.InvariantCulture)}",
                _ => $" = {value}",
            };
            return new ConfigException($"{Source}: {path}{shown}: {problem}");
        }

        public void CheckKeys(TomlTable t, string at, string[] allowed)
        {
            foreach (var kv in t)
                if (Array.IndexOf(allowed, kv.Key) < 0)
                    throw Error(at, kv.Key, kv.Value is TomlTable or TomlTableArray ? null : kv.Value,
                        $"unknown key (allowed here: {string.Join(", ", allowed)})");
        }

        public List<TomlTable> TableArray(TomlTable t, string key, string at)
        {
            if (!t.TryGetValue(key, out var v))
                return new List<TomlTable>();
            if (v is TomlTableArray arr)
                return arr.ToList();
            throw Error(at, key, null, $"must be an array of tables ([[{(at.Length == 0 ? key : "service." + key)}]])");
        }

        public string RequiredString(TomlTable t, string at, string key)
        {
            if (!t.TryGetValue(key, out var v))
                throw Error(at, key, null, "missing");
            return v as string ?? throw Error(at, key, v, "must be a string");
        }

        /// <summary>An IPv4 or IPv6 address; when <paramref name="family"/> is given, of that family
        /// (the VIP's: a service never mixes families).</summary>
        public IPAddress RequiredAddress(TomlTable t, string at, string key, IPAddress? family = null)
        {
            string s = RequiredString(t, at, key);
            if (!IPAddress.TryParse(s, out var a) || s.Count(c => c == '.') != 3 && a.AddressFamily == AddressFamily.InterNetwork)
                throw Error(at, key, s, "not an IP address");
            if (a.IsIPv4MappedToIPv6)
                throw Error(at, key, s, $"an IPv4-mapped IPv6 address; write it as {a.MapToIPv4()}");
            if (a.AddressFamily == AddressFamily.InterNetworkV6 && (a.IsIPv6LinkLocal || a.IsIPv6Multicast || a.Equals(IPAddress.IPv6Any)))
                throw Error(at, key, s, "link-local, multicast and unspecified IPv6 addresses cannot be served or translated to");
            if (family != null && a.AddressFamily != family.AddressFamily)
                throw Error(at, key, s,
                    $"the service's vip {family} is {(family.AddressFamily == AddressFamily.InterNetwork ? "IPv4" : "IPv6")}: " +
                    "a service's vip, snat and backends are all of one family (no translation between IPv4 and IPv6)");
            return a;
        }

        public ushort RequiredPort(TomlTable t, string at, string key)
        {
            if (!t.TryGetValue(key, out var v))
                throw Error(at, key, null, "missing");
            if (v is not long n)
                throw Error(at, key, v, "must be a number");
            if (n is < 1 or > 65535)
                throw Error(at, key, n, "port out of range 1-65535");
            return (ushort)n;
        }

        public int OptionalInt(TomlTable t, string at, string key, int fallback, int min, int max)
        {
            if (!t.TryGetValue(key, out var v))
                return fallback;
            if (v is not long n)
                throw Error(at, key, v, "must be a number");
            if (n < min || n > max)
                throw Error(at, key, n, $"out of range {min}-{max}");
            return (int)n;
        }

        public double OptionalSeconds(TomlTable t, string at, string key, double fallback)
        {
            if (!t.TryGetValue(key, out var v))
                return fallback;
            double d = v switch
            {
                long n => n,
                double x => x,
                _ => throw Error(at, key, v, "must be a number of seconds"),
            };
            if (d is < 0.05 or > 3600)
                throw Error(at, key, d, "out of range 0.05-3600 seconds");
            return d;
        }

        public T OptionalEnum<T>(TomlTable t, string at, string key, T fallback, params (string Name, T Value)[] choices)
        {
            if (!t.TryGetValue(key, out var v))
                return fallback;
            if (v is string s)
                foreach (var (name, value) in choices)
                    if (name == s)
                        return value;
            throw Error(at, key, v, $"must be one of: {string.Join(" | ", choices.Select(c => c.Name))}");
        }
    }
}
