// The lab as Kubernetes describes it: a v1 List of Nodes and Pods in the shape
// `kubectl get nodes,pods -A -o json` prints, with the annotations flanneld writes.
import {
  FLANNEL_BACKEND_DATA, FLANNEL_BACKEND_TYPE, FLANNEL_BACKEND_V6_DATA, FLANNEL_KUBE_SUBNET_MANAGER, FLANNEL_PUBLIC_IP, FLANNEL_PUBLIC_IPV6, VXTRACE_NETNS,
  type V1List, type V1Node, type V1Pod,
} from '../cluster/k8s.js';
import type { LabNode, LabPod, LabStack } from './types.js';

/**
 * The lab's cluster objects. With IPv6 (flanneld's EnableIPv6): public-ipv6 and backend-v6-data
 * annotations, the IPv6 pod CIDR in spec.podCIDRs (after the IPv4 one in a dual-stack lab; alone
 * in an IPv6-only lab, where the IPv4 annotations are absent, as flanneld with EnableIPv4=false
 * leaves them), both InternalIPs, both pod IPs.
 */
export function labClusterList(labName: string, nodes: readonly LabNode[], pods: readonly LabPod[], createdAt: string, stack: LabStack = 'ipv4'): V1List {
  const v4 = stack !== 'ipv6';
  const nodeItems: V1Node[] = nodes.map((n) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      uid: `vxtrace-lab-${labName}-${n.name}`,
      labels: { 'kubernetes.io/hostname': n.name, 'kubernetes.io/os': 'linux', 'vxtrace.io/lab': labName },
      annotations: {
        ...(v4 ? { [FLANNEL_BACKEND_DATA]: JSON.stringify({ VNI: n.vni, VtepMAC: n.vtepMac }) } : {}),
        ...(n.v6 ? { [FLANNEL_BACKEND_V6_DATA]: JSON.stringify({ VNI: n.vni, VtepMAC: n.v6.vtepMac }) } : {}),
        [FLANNEL_BACKEND_TYPE]: 'vxlan',
        [FLANNEL_KUBE_SUBNET_MANAGER]: 'true',
        ...(v4 ? { [FLANNEL_PUBLIC_IP]: n.publicIp } : {}),
        ...(n.v6 ? { [FLANNEL_PUBLIC_IPV6]: n.v6.publicIp } : {}),
        [VXTRACE_NETNS]: n.netns,
      },
    },
    spec: { podCIDR: v4 ? n.podCidr : n.v6!.podCidr, podCIDRs: [...(v4 ? [n.podCidr] : []), ...(n.v6 ? [n.v6.podCidr] : [])] },
    status: {
      // kubelet runs with --node-ip set to the eth1 address(es); flanneld chose on its own.
      addresses: [
        ...(v4 ? [{ type: 'InternalIP', address: n.underlayIp }] : []),
        ...(n.v6 ? [{ type: 'InternalIP', address: n.v6.underlayIp }] : []),
        { type: 'Hostname', address: n.name },
      ],
    },
  }));
  const hostIp = new Map(nodes.map((n) => [n.name, v4 ? n.underlayIp : n.v6!.underlayIp]));
  const podItems: V1Pod[] = pods.map((p) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: p.name,
      namespace: p.namespace,
      uid: `vxtrace-lab-${labName}-${p.name}`,
      labels: { app: p.name, 'vxtrace.io/lab': labName },
      annotations: { [VXTRACE_NETNS]: p.netns },
    },
    spec: { nodeName: p.node, containers: [{ name: 'app', image: 'busybox' }] },
    status: {
      phase: 'Running',
      podIP: p.ip,
      podIPs: [{ ip: p.ip }, ...(p.ip6 ? [{ ip: p.ip6 }] : [])],
      hostIP: hostIp.get(p.node),
    },
  }));
  return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items: [...nodeItems, ...podItems] };
}
