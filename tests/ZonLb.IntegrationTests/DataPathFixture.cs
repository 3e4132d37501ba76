using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// One topology (client, load balancer, backend namespaces; see <see cref="Topology"/>) with the backend
/// servers and a running zonlb-afxdp, shared by the data path tests. Everything is torn down in Dispose,
/// which xunit calls whether the tests passed or not.
/// </summary>
public sealed class DataPathFixture : IDisposable
{
    public DataPathFixture()
    {
        Topology = Topology.Create();
        try
        {
            Servers = new Backends(Topology.Backend, Topology.BackendIp, 8080, 5353);
            LoadBalancer = ZonLbProcess.Start(Topology.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public Topology Topology { get; }
    public Backends? Servers { get; }
    public ZonLbProcess? LoadBalancer { get; }

    public void Dispose()
    {
        try
        {
            if (LoadBalancer != null)
            {
                LoadBalancer.Stop();
                LoadBalancer.Dispose();
            }
            Servers?.Dispose();
        }
        finally
        {
            Topology.Dispose();
        }
    }
}

[CollectionDefinition("dataplane")]
public sealed class DataplaneCollection : ICollectionFixture<DataPathFixture>
{
}
