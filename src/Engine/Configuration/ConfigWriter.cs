using System.Globalization;
using System.Text;
using ZonLb.Native.Bpf;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Configuration;

/// <summary>Writes a configuration in the TOML format <see cref="ConfigLoader"/> reads (config show, config import).</summary>
public static class ConfigWriter
{
    /// <summary>The configuration as TOML that <see cref="ConfigLoader.Parse"/> reads back to the same model.</summary>
    public static string Write(LoadBalancerConfig c)
    {
        var sb = new StringBuilder();
        foreach (var i in c.Interfaces)
        {
            sb.Append("[[interface]]\n");
            sb.Append($"name = \"{i.Name}\"\n");
            if (i.XdpMode != XdpAttachMode.Auto)
                sb.Append($"xdp_mode = \"{i.XdpMode.ToString().ToLowerInvariant()}\"\n");
            if (i.XskMode != XskBindMode.Auto)
                sb.Append($"xsk_mode = \"{i.XskMode.ToString().ToLowerInvariant()}\"\n");
            if (i.Vlans.Count > 0)
                sb.Append($"vlans = [{string.Join(", ", i.Vlans)}]\n");
            sb.Append('\n');
        }
        if (c.ControlSocket != LoadBalancerConfig.DefaultControlSocket)
            sb.Insert(0, $"control_socket = \"{c.ControlSocket}\"\n\n");
        if (c.MetricsListen != null)
            sb.Insert(0, $"metrics_listen = \"{c.MetricsListen}\"\n");
        foreach (var s in c.Services)
        {
            sb.Append("[[service]]\n");
            sb.Append($"name = \"{s.Name}\"\n");
            sb.Append($"vip = \"{s.Vip}\"\n");
            sb.Append($"protocol = \"{s.Protocol.ToString().ToLowerInvariant()}\"\n");
            if (s.Port != 0)
                sb.Append($"port = {s.Port}\n");
            if (s.Snat.Count == 1)
                sb.Append($"snat = \"{s.Snat[0]}\"\n");
            else if (s.Snat.Count > 1)
                sb.Append($"snat = [{string.Join(", ", s.Snat.Select(a => $"\"{a}\""))}]\n");
            if (s.Mode == ForwardingMode.Dsr)
                sb.Append("mode = \"dsr\"\n");
            if (s.Health is { } h)
                sb.Append(string.Create(CultureInfo.InvariantCulture,
                    $"health = {{ kind = \"{h.Kind.ToString().ToLowerInvariant()}\", interval = {h.IntervalSeconds}, timeout = {h.TimeoutSeconds}, rise = {h.Rise}, fall = {h.Fall}, path = \"{h.Path}\", drain = {(h.Drain ? "true" : "false")} }}\n"));
            foreach (var b in s.Backends)
            {
                sb.Append("\n[[service.backend]]\n");
                sb.Append($"address = \"{b.Address}\"\n");
                if (b.Port != 0 && b.Port != s.Port)
                    sb.Append($"port = {b.Port}\n");
                if (b.Weight != 1)
                    sb.Append($"weight = {b.Weight}\n");
            }
            sb.Append('\n');
        }
        var engine = new StringBuilder();
        var defaults = new EngineOptions();
        foreach (var option in ConfigOptions.In("engine"))
        {
            if (option.GetInt != null)
            {
                int now = option.GetInt(c.Engine), def = option.DefaultFrom?.Invoke(c.Engine) ?? option.GetInt(defaults);
                if (now != def)
                    engine.Append(CultureInfo.InvariantCulture, $"{option.Key} = {now}\n");
            }
            else if (option.GetBool != null && option.GetBool(c.Engine) != option.GetBool(defaults))
            {
                engine.Append($"{option.Key} = {(option.GetBool(c.Engine) ? "true" : "false")}\n");
            }
            else if (option.Key == "worker_fifo_priority" && c.Engine.WorkerFifoPriority != defaults.WorkerFifoPriority)
            {
                engine.Append(CultureInfo.InvariantCulture, $"worker_fifo_priority = {c.Engine.WorkerFifoPriority}\n");
            }
            else if (option.Key == "table_full" && c.Engine.TableFull != defaults.TableFull)
            {
                engine.Append("table_full = \"refuse\"\n");
            }
            else if (option.Key == "cpu_affinity" && c.Engine.CpuAffinity.Count > 0)
            {
                engine.Append(CultureInfo.InvariantCulture, $"cpu_affinity = [{string.Join(", ", c.Engine.CpuAffinity)}]\n");
            }
        }
        if (engine.Length > 0)
            sb.Append("[engine]\n").Append(engine);
        return sb.ToString().TrimEnd() + "\n";
    }
}
