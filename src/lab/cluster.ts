// The lab as Kubernetes describes it: a v1 List of Nodes and Pods in the shape
// `kubectl get nodes,pods -A -o json` prints, with the annotations flanneld writes.
import {
  FLANNEL_BACKEND_DATA, FLANNEL_BACKEND_TYPE, FLANNEL_KUBE_SUBNET_MANAGER, FLANNEL_PUBLIC_IP, VXTRACE_NETNS,
  type V1List, type V1Node, type V1Pod,
} from '../cluster/k8s.js';
import type { LabNode, LabPod } from './types.js';

export function labClusterList(labName: string, nodes: readonly LabNode[], pods: readonly LabPod[], createdAt: string): V1List {
  const nodeItems: V1Node[] = nodes.map((n) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      uid: `vxtrace-lab-${labName}-${n.name}`,
      labels: { 'kubernetes.io/hostname': n.name, 'kubernetes.io/os': 'linux', 'vxtrace.io/lab': labName },
      annotations: {
        [FLANNEL_BACKEND_DATA]: JSON.stringify({ VNI: n.vni, VtepMAC: n.vtepMac }),
        [FLANNEL_BACKEND_TYPE]: 'vxlan',
        [FLANNEL_KUBE_SUBNET_MANAGER]: 'true',
        [FLANNEL_PUBLIC_IP]: n.publicIp,
        [VXTRACE_NETNS]: n.netns,
      },
    },
    spec: { podCIDR: n.podCidr, podCIDRs: [n.podCidr] },
    status: {
      // kubelet runs with --node-ip set to the eth1 address; flanneld chose on its own.
      addresses: [
        { type: 'InternalIP', address: n.underlayIp },
        { type: 'Hostname', address: n.name },
      ],
    },
  }));
  const hostIp = new Map(nodes.map((n) => [n.name, n.underlayIp]));
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
      podIPs: [{ ip: p.ip }],
      hostIP: hostIp.get(p.node),
    },
  }));
  return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items: [...nodeItems, ...podItems] };
}
